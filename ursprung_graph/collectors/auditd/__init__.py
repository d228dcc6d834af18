"""The auditd collector: raw audit records (log file or audisp stdin) -> normalized events.

`records` parses the text format into syscall events, the shared OS model
(`collectors/os_model`) replays them into provenance events, `source` cuts the stream into
resumable chunks.
"""

from .source import AuditdSource, normalize_file

__all__ = ["AuditdSource", "normalize_file"]
