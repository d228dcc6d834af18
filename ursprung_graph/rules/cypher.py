"""The statements rule actions send to the graph store: MERGEs on deterministic keys, so a
record or version written twice (a restart re-reading a log) is one node."""

from __future__ import annotations

from ..schema import graph as g
from ..store.cypher import Cypher

_REC, _PROC, _FILE, _VER, _RUN = g.RECORD, g.PROCESS, g.FILE, g.VERSION, g.PIPELINE_RUN
_INCLUDES, _HAS_VERSION, _OBSERVED = g.INCLUDES.name, g.HAS_VERSION.name, g.OBSERVED.name

UPSERT_RECORDS = Cypher(
    "UNWIND $rows AS r "
    f"MERGE (x:{_REC} {{key: r.key}}) "
    "ON CREATE SET x.rule = r.rule, x.action = r.action, x.fields = r.fields, "
    "x.line = r.line, x.ts = r.ts, x.host = r.host, x.path = r.path, x.pos = r.pos, "
    "x.metrics = r.metrics, x.step = r.step"
)

LINK_RECORD_PROCESSES = Cypher(
    "UNWIND $rows AS r "
    f"MATCH (x:{_REC} {{key: r.key}}) "
    f"MATCH (p:{_PROC} {{key: r.proc}}) "
    f"MERGE (p)-[:{g.LOGGED.name}]->(x)"
)

LINK_RECORD_FILES = Cypher(
    "UNWIND $rows AS r "
    f"MATCH (x:{_REC} {{key: r.key}}) "
    f"MERGE (f:{_FILE} {{key: r.file}}) "
    "ON CREATE SET f.path = r.path, f.host = r.file_host, f.name = r.name, "
    "f.first = r.ts, f.last = r.ts "
    f"MERGE (f)-[:{g.FILE_RECORD.name}]->(x)"
)

LINK_RECORD_VERSIONS = Cypher(
    "UNWIND $rows AS r "
    f"MATCH (x:{_REC} {{key: r.key}}) "
    f"MATCH (v:{_VER} {{key: r.version}}) "
    f"MERGE (v)-[:{g.VERSION_RECORD.name}]->(x)"
)

#: A version a rule saw (TRACK, DBLOAD): the file, the version (first and last time seen)
#: and the file's edge to it.
UPSERT_RULE_VERSIONS = Cypher(
    "UNWIND $rows AS r "
    f"MERGE (f:{_FILE} {{key: r.file}}) "
    "ON CREATE SET f.path = r.path, f.host = r.host, f.name = r.name, "
    "f.first = r.at, f.last = r.at "
    f"MERGE (v:{_VER} {{key: r.key}}) "
    "ON CREATE SET v.path = r.path, v.sha256 = r.sha256, v.size = r.size, v.mtime = r.mtime "
    "SET v.stored = CASE WHEN r.stored THEN true ELSE coalesce(v.stored, false) END, "
    "v.first = CASE WHEN v.first IS NULL OR r.at < v.first THEN r.at ELSE v.first END, "
    "v.last = CASE WHEN v.last IS NULL OR r.at > v.last THEN r.at ELSE v.last END "
    f"MERGE (f)-[:{g.HAS_VERSION.name}]->(v)"
)

#: The process that wrote a tracked version (at: the first write-close that showed it).
LINK_VERSION_WRITERS = Cypher(
    "UNWIND $rows AS r "
    f"MATCH (v:{_VER} {{key: r.key}}) "
    f"MATCH (p:{_PROC} {{key: r.proc}}) "
    f"MERGE (p)-[w:{g.WROTE_VERSION.name}]->(v) "
    "SET w.at = CASE WHEN w.at IS NULL OR r.at < w.at THEN r.at ELSE w.at END"
)

#: The runs that include a process.
RUNS_OF_PROCESSES = Cypher(
    "UNWIND $keys AS k "
    f"MATCH (x:{_RUN})-[:{_INCLUDES}]->(p:{_PROC} {{key: k}}) "
    "RETURN DISTINCT x.key AS run"
)

#: The metric-carrying records of a run's processes, in order.
RUN_METRIC_RECORDS = Cypher(
    f"MATCH (x:{_RUN} {{key: $run}})-[:{_INCLUDES}]->(:{_PROC})-[:{g.LOGGED.name}]->(r:{_REC}) "
    "WHERE r.metrics IS NOT NULL "
    "RETURN r.metrics AS metrics, r.step AS step, r.ts AS ts, r.pos AS pos "
    "ORDER BY ts, pos"
)

RUN_METRICS = Cypher(
    f"MATCH (x:{_RUN} {{key: $run}}) RETURN x.metrics AS metrics"
)

SET_RUN_METRICS = Cypher(
    "UNWIND $rows AS r "
    f"MATCH (x:{_RUN} {{key: r.run}}) "
    "SET x.metrics = r.metrics"
)

#: A process a RUN rule marked as a run's root, as `runs define` reads candidates.
PROCESS_BY_KEY = Cypher(
    f"MATCH (p:{_PROC} {{key: $key}}) "
    "RETURN p.key AS key, p.cmdline AS cmdline, p.argv AS argv, p.cwd AS cwd, "
    "p.host AS host, p.pid AS pid, p.start AS start, p.end AS end, "
    "p.exit_code AS exit_code, p.uid AS uid, p.first AS first, p.last AS last"
)

#: The versions of a file (by path, on a host or a shared file system), oldest first.
FILE_VERSIONS = Cypher(
    f"MATCH (f:{_FILE} {{path: $path}})-[:{_HAS_VERSION}]->(v:{_VER}) "
    "WHERE $host IS NULL OR f.host = $host OR f.host IS NULL "
    f"OPTIONAL MATCH (p:{_PROC})-[w:{g.WROTE_VERSION.name}]->(v) "
    f"OPTIONAL MATCH (x:{_RUN})-[:{_OBSERVED}]->(v) "
    "RETURN v.key AS key, v.sha256 AS sha256, v.size AS size, v.mtime AS mtime, "
    "v.first AS first, v.last AS last, v.stored AS stored, f.host AS host, "
    "collect(DISTINCT p.pid) AS writers, collect(DISTINCT x.id) AS runs "
    "ORDER BY first, key"
)
