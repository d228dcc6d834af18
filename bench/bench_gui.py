"""Time to interactive of the GUI's explore page for lineages of about 100, 1,000 and 5,000
nodes, in headless Debian Chromium (Playwright with executable_path).

Side by side in one run, interleaved over rounds (the machine's speed drifts): the anchor, the
query layer's lineage walk alone (``query.lineage.lineage``, in this process); the server's
steps for the page (its walk, and filtering + layout + clustering, as the page reports them);
the page done (its last byte: the head with the deferred scripts goes out first, the graph
when built); and interactive (the graph drawn and answering clicks: the page's
``graphReadyAt``, from navigation start). Medians. (Each visit asks "as of" a distinct
far-future time, the same graph: the page always walks afresh anyway.)

    .venv/bin/python bench/bench_gui.py [--rounds 5] [--sizes 100,1000,5000]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import uvicorn  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.gui.app import gui_app  # noqa: E402
from tests.gui.bigraph import big_lineage  # noqa: E402
from ursprung_graph.pipeline.sinks import write_events  # noqa: E402
from ursprung_graph.query.lineage import lineage  # noqa: E402
from ursprung_graph.schema.times import FOREVER  # noqa: E402
from ursprung_graph.store.embedded import EmbeddedServer  # noqa: E402
from ursprung_graph.store.falkordb import FalkorDBStore  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sizes", default="100,1000,5000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-gui-") as home:
        server = EmbeddedServer(Path(home) / "falkordb")
        server.start()
        try:
            run(server, sizes, args.rounds)
        finally:
            server.stop()


def run(server: EmbeddedServer, sizes: list[int], rounds: int) -> None:
    store = FalkorDBStore(unix_socket=str(server.socket), graph="bench")
    store.ensure_schema()
    roots = {n: big_lineage(lambda ev: write_events(store, ev), nodes=n, tag=f"b{n}")
             for n in sizes}
    counts = {n: len(lineage(store, roots[n], depth=5).nodes) for n in sizes}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    web = uvicorn.Server(uvicorn.Config(gui_app(store), host="127.0.0.1", port=port,
                                        log_level="warning", access_log=False))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    while not web.started:
        time.sleep(0.05)
    times: dict[int, dict[str, list[float]]] = {
        n: {"query": [], "walk": [], "layout": [], "page done": [], "interactive": []}
        for n in sizes}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            visit = 0
            for r in range(rounds + 1):  # round 0 warms caches and is not counted
                for n in sizes:
                    visit += 1
                    as_of = str(FOREVER - visit)
                    t = time.perf_counter()
                    lineage(store, roots[n], depth=5)
                    query = time.perf_counter() - t
                    page = browser.new_page()
                    page.goto(f"http://127.0.0.1:{port}/gui/explore?depth=5&as_of={as_of}"
                              f"&node={quote(roots[n])}", timeout=120_000)
                    page.wait_for_selector("body[data-graph-ready='1']", state="attached",
                                           timeout=120_000)
                    steps, done, ready = page.evaluate(
                        "[JSON.parse(document.getElementById('graph').dataset.timing),"
                        " performance.getEntriesByType('navigation')[0].responseEnd,"
                        " window.graphReadyAt]")
                    page.close()
                    if r:
                        times[n]["query"].append(query)
                        times[n]["walk"].append(steps["walk"] / 1000)
                        times[n]["layout"].append((steps["layout"] + steps["view"]) / 1000)
                        times[n]["page done"].append(done / 1000)
                        times[n]["interactive"].append(ready / 1000)
            browser.close()
    finally:
        web.should_exit = True
        thread.join(timeout=10)
        store.clear()
        store.close()
    print(f"GUI explore page, medians of {rounds} interleaved rounds (seconds)")
    print(f"{'nodes':>7} {'lineage query (anchor)':>23} {'page walk':>10} "
          f"{'filter+layout+cluster':>22} {'page done':>10} {'interactive':>12}  drawn as")
    for n in sizes:
        m = {k: statistics.median(v) for k, v in times[n].items()}
        drawn = "clustered" if counts[n] > 1000 else "every node"
        print(f"{counts[n]:>7} {m['query']:>23.3f} {m['walk']:>10.3f} {m['layout']:>22.3f} "
              f"{m['page done']:>10.3f} {m['interactive']:>12.3f}  {drawn}")


if __name__ == "__main__":
    main()
