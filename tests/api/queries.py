"""GraphQL documents the tests send, and how their answers compare with the CLI's JSON."""

from __future__ import annotations

from typing import Any

NODE_FIELDS = """
  __typename
  ... on File { id key path host fs }
  ... on Process { id key host pid exe cmdline cwd start end exitCode }
  ... on Pipe { id key host }
  ... on Endpoint { id key host family address port }
"""

LINEAGE = """
query ($path: String!, $host: String, $direction: Direction!, $depth: Int, $asOf: Time,
       $includeSystem: Boolean!, $kinds: [NodeKind!], $maxNodes: Int) {
  lineage(path: $path, host: $host, direction: $direction, depth: $depth, asOf: $asOf,
          includeSystem: $includeSystem, kinds: $kinds, maxNodes: $maxNodes) {
    rootKey truncated reason
    root { __typename ... on File { path } }
    nodes { NODE_FIELDS }
    edges { sourceKey targetKey kind first last }
  }
}
""".replace("NODE_FIELDS", NODE_FIELDS)

_ATTRS = {"File": ("path", "host", "fs"),
          "Process": ("host", "pid", "exe", "cmdline", "cwd", "start", "end", "exitCode"),
          "Pipe": ("host",), "Endpoint": ("host", "family", "address", "port")}
_CLI = {"exitCode": "exit_code"}
_KIND = {"File": "file", "Process": "process", "Pipe": "pipe", "Endpoint": "endpoint"}


def api_nodes(lineage: dict[str, Any]) -> dict[str, tuple]:
    """key -> (kind, attributes) of an API lineage, times as ints."""
    out = {}
    for n in lineage["nodes"]:
        t = n["__typename"]
        values = tuple(int(n[a]) if a in ("start", "end") and n[a] is not None else n[a]
                       for a in _ATTRS[t])
        out[n["key"]] = (_KIND[t], values)
    return out


def cli_nodes(cli: dict[str, Any]) -> dict[str, tuple]:
    out = {}
    for n in cli["nodes"]:
        t = next(k for k, v in _KIND.items() if v == n["kind"])
        out[n["id"]] = (n["kind"], tuple(n.get(_CLI.get(a, a)) for a in _ATTRS[t]))
    return out


def api_edges(lineage: dict[str, Any]) -> set[tuple]:
    return {(e["sourceKey"], e["targetKey"], e["kind"], int(e["first"]), int(e["last"]))
            for e in lineage["edges"]}


def cli_edges(cli: dict[str, Any]) -> set[tuple]:
    return {(e["source"], e["target"], e["kind"], e["first"], e["last"])
            for e in cli["edges"]}
