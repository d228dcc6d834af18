"""The OS model every syscall front end shares (auditd, the strace tracer, eBPF).

A front end turns its raw source into syscall records (:mod:`.syscall`: the neutral
:class:`Syscall`, or any record of the :class:`SyscallRecord` shape) and feeds them to one
:class:`OSModel`, which keeps the process and descriptor tables and returns normalized
events (:mod:`.model` says how to drive it). :mod:`.syscalls` names syscall numbers.
"""

from .model import Emitter, Fd, Handler, ModelState, OSModel, Proc
from .syscall import NAMETYPES, PathItem, SockAddr, Syscall, SyscallRecord

__all__ = [
    "NAMETYPES",
    "Emitter",
    "Fd",
    "Handler",
    "ModelState",
    "OSModel",
    "PathItem",
    "Proc",
    "SockAddr",
    "Syscall",
    "SyscallRecord",
]
