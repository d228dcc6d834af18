"""ursprung-graph: provenance graphs for data-science and ML pipelines on Linux clusters."""

__version__ = "0.1.0"
