"""Prometheus metrics of the API, in its own registry (as the ingest workers keep theirs):
requests by route and status, request time, GraphQL errors by code, partial answers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("ursprung_api_requests", "HTTP requests",
                                ["route", "status"], registry=r)
        self.seconds = Histogram(
            "ursprung_api_request_seconds", "Time to answer one HTTP request", ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.errors = Counter("ursprung_api_graphql_errors", "GraphQL errors by code",
                              ["code"], registry=r)
        self.truncated = Counter("ursprung_api_truncated", "Partial answers (a walk cut "
                                 "short by depth, node cap or time budget)", registry=r)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels or None) or 0.0
