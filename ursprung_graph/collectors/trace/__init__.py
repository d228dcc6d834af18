"""The local tracer behind `ursprung run`: strace output -> audit-shaped syscall events ->
the auditd OS model -> normalized events (see `convert`), run by `runner`, recorded as a
pipeline run by `record`."""

from .convert import TraceConverter, TraceModel
from .runner import TraceResult, TraceUnavailable, check_tracing, trace
from .strace import TRACED_SYSCALLS, StraceParser

__all__ = ["TRACED_SYSCALLS", "StraceParser", "TraceConverter", "TraceModel", "TraceResult",
           "TraceUnavailable", "check_tracing", "trace"]
