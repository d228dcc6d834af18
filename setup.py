"""Build of the compiled parts; everything else is in pyproject.toml.

The audit-log parser's C core (ursprung_graph/collectors/auditd/_records.c) is optional:
where it cannot be compiled the pure-Python parser is used (records.IMPLEMENTATION says
which one runs; tests/collectors/test_audit_records_c.py fails in a checkout without it).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ursprung_graph.collectors.auditd._records",
            sources=["ursprung_graph/collectors/auditd/_records.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
