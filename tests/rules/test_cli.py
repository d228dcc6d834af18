"""The rules on the command line: `rules check`, `rules test --on LOG`, and `ursprung
import` with rules from --rules and from [rules] files in ursprung.toml."""

from __future__ import annotations

import json
from pathlib import Path

from ..runs.helpers import cli_env, ursprung

DATA = Path(__file__).resolve().parents[1] / "data"
RUN_RULE = 'kind=exec && proc.argv@".*train\\.py --lr.*" -> RUN train\n'


def test_check_reports_positions_and_ok(settings, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.rules", tmp_path / "bad.rules"
    good.write_text("# c\n" + RUN_RULE + "gid=1 -> RUN x\n")
    bad.write_text("pid>0 -> RUN a\npid > -> RUN b\n")
    ok = ursprung(settings, "rules", "check", str(good))
    assert ok.returncode == 0 and b"2 rule(s) OK" in ok.stdout
    assert b"warning:" in ok.stderr and b"gid" in ok.stderr
    no = ursprung(settings, "rules", "check", str(bad))
    assert no.returncode == 8
    assert b"ursprung: error: 1 problem(s) in the rules:" in no.stderr
    assert f"{bad}:2:7: unexpected '->'".encode() in no.stderr
    assert b"Traceback" not in no.stderr


def test_test_shows_what_each_rule_matches(settings, tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(RUN_RULE + "kind=connect -> RUN net\n")
    done = ursprung(settings, "rules", "test", str(rules), "--on",
                    str(DATA / "two_runs.audit.log"), "--host", "demo", "--limit", "2")
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode().splitlines()
    assert out[0].startswith(f"{rules}:1:1: ") and " 0 of " not in out[0]
    assert "bin/train.py --lr" in out[1]
    assert out[-1].startswith(f"{rules}:2:1: 0 of ")


def test_import_with_rules_defines_runs(settings, store, tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(RUN_RULE)
    config = tmp_path / "ursprung.toml"
    config.write_text(f'[rules]\nfiles = ["{rules}"]\n')
    env = cli_env(settings, URSPRUNG_CONFIG=str(config))
    done = ursprung(settings, "import", "--host", "demo", "--no-progress",
                    str(DATA / "two_runs.audit.log"), env=env)
    assert done.returncode == 0, done.stderr.decode()
    runs = store.read("MATCH (x:PipelineRun) RETURN x.id AS id, x.origin AS origin, "
                      "x.params AS params, x.pipeline AS pipeline ORDER BY x.start")
    assert [(r["pipeline"], r["origin"]) for r in runs] == [("train", "rule")] * 2
    assert [json.loads(r["params"])["lr"] for r in runs] == ["0.1", "0.2"]
    members = store.read("MATCH (x:PipelineRun)-[:INCLUDES]->(p:Process) "
                         "RETURN x.id AS id, count(p) AS n")
    assert all(m["n"] > 1 for m in members)  # the subtree, not just the root
    # the rule form of `runs define` gives the same runs
    define = ursprung(settings, "runs", "define", "train", "--match", r"bin/train\.py --lr",
                      env=env)
    assert define.returncode == 0, define.stderr.decode()
    again = store.read("MATCH (x:PipelineRun) RETURN count(x) AS n")
    assert again[0]["n"] == 2
    compare = ursprung(settings, "runs", "compare", runs[0]["id"], runs[1]["id"], env=env)
    assert compare.returncode == 0 and b"lr" in compare.stdout
