"""The local tracer behind `ursprung run`: `launch` starts strace and the command (and checks
first that tracing works), `runner` follows the trace while it runs: strace output
(`strace`) -> audit-shaped syscall events -> the auditd OS model -> normalized events
(`convert`). `pipeline.record` records it as a pipeline run.

The package imports nothing itself: `launch` must stay light (the command starts before
the rest is imported)."""
