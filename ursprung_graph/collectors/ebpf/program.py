"""The bpftrace program of the eBPF tracer, generated for one capture.

Probes: ``raw_syscalls:sys_enter`` and ``sys_exit`` (one program each, switching on the
syscall number: bpftrace 0.17 compiles every probe separately, ~0.2 s each, so one probe per
syscall would take ~13 s to start), ``task:task_newtask`` (a new task and its clone flags:
thread or process), ``sched:sched_process_exec`` (an exec that succeeded),
``sched:sched_process_exit``, and ``signal:signal_generate``/``signal_deliver`` (how a
process killed by a signal ended). No BTF access (``curtask``): loading the kernel's BTF costs ~1 s.

Enter and exit are paired per thread in the BPF hash map ``@a``: the enter probe saves the
syscall number and its first four arguments (keyed by tid) for the syscalls in
:data:`SYSCALLS`, the exit probe takes them out and prints one record with the result.
Failed calls print nothing (they moved no data; the OS model ignores them), except a
``connect`` still in progress. ``execve``/``execveat`` print their file name and argv at
enter (after a successful exec the caller's memory is gone); ``sched_process_exec`` says
that it succeeded.

Which processes: either a subtree (``ursprung run``: the root pid is in the map ``@t`` from
the start, and every task it creates is added at ``task_newtask``), or the node (uid and
cgroup filters compiled into the predicates; ``@x`` marks what is excluded: the collector
and its tracer). A probe on ``getpgid`` called by the starting process prints ``R``:
bpftrace attaches probes in program order and this one comes last, so once ``R`` is seen,
every other probe is attached.

Output (:mod:`.records` parses it): one record per line, terminated by ``\\x1e\\n``::

    NR TID PID TS RET A0 A1 A2 A3 X0 X1 X2[\\x1fSTRING]\\x1e\\n     a syscall (number NR)
    N TID PID TS CHILD FLAGS                                      a new task
    E TID PID TS OLD_TID                                          a successful exec
    X TID PID TS CODE GROUP_DEAD                                  a task ended
    & TID\\x1fSTRING / + TID\\x1fMORE                              next string / rest of one
    ; TID                                                         the end of an exec's argv
    ~ TID                                                         a name was cut here

``TS`` is ``nsecs`` (CLOCK_MONOTONIC). ``X0..X2`` are what the kernel wrote to user memory
(the two descriptors of ``pipe``) or what a pointer argument points to (the first 24 bytes
of a socket address; the flags of ``openat2``'s ``open_how``). A record has at most one
string, printed raw (file names are bytes; bpftrace 0.17 prints ``%s`` without escaping)
after ``\\x1f``; more strings (the second path of a rename, argv elements) follow as ``&``
lines, and a string longer than one bpftrace string (:data:`CHUNK` bytes: ``str()`` holds at
most 200 bytes in 0.17, on the 512-byte BPF stack) goes on in ``+`` lines.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from ..os_model.syscalls import AARCH64, X86_64

#: bytes per ``str()`` (BPFTRACE_STRLEN, its maximum in 0.17); a chunk is one less.
STRLEN = 200
CHUNK = STRLEN - 1
#: chunks of a call's names together (twice this: 1,592 bytes; longer names are cut, and
#: the record says so), per argv element; argv elements per exec. The loop that prints
#: them is what bpftrace compiles and the verifier walks longest: 21 chunks (PATH_MAX)
#: took 2 s more to attach than 4.
PATH_CHUNKS = 4
ARG_CHUNKS = 8
MAX_ARGS = 64
#: words before a chunk's end that must hold no NUL for it to be continued (``exact``)
LOOKBACK_WORDS = 4
EINPROGRESS = 115
#: signals whose default action ends the process (ranges): its code is 128 + the number
FATAL_SIGNALS = ((1, 16), (24, 27), (29, 31))


@dataclass(frozen=True, slots=True)
class Shape:
    """Where a traced syscall's strings and extra values are: ``strings`` (indices of the
    arguments that point to the first and second string), ``argv`` (index of an argv
    array, printed at enter: exec), ``extra`` (what X0..X2 hold)."""

    strings: tuple[int, ...] = ()
    argv: int | None = None
    extra: str = ""  # "", "pipe", "sockaddr", "how"


#: The traced syscalls and their shapes. Beyond the issue's list: chdir/fchdir (relative
#: names resolve against the cwd), dup, fcntl's F_DUPFD, ftruncate, rmdir: what the strace
#: tracer traces too.
SYSCALLS: dict[str, Shape] = {
    "open": Shape((0,)), "openat": Shape((1,)), "openat2": Shape((1,), extra="how"),
    "creat": Shape((0,)),
    "close": Shape(), "dup": Shape(), "dup2": Shape(), "dup3": Shape(), "fcntl": Shape(),
    "pipe": Shape(extra="pipe"), "pipe2": Shape(extra="pipe"),
    "rename": Shape((0, 1)), "renameat": Shape((1, 3)), "renameat2": Shape((1, 3)),
    "unlink": Shape((0,)), "unlinkat": Shape((1,)), "rmdir": Shape((0,)),
    "link": Shape((0, 1)), "linkat": Shape((1, 3)),
    "symlink": Shape((0, 1)), "symlinkat": Shape((0, 2)),
    "truncate": Shape((0,)), "ftruncate": Shape(),
    "chdir": Shape((0,)), "fchdir": Shape(),
    "connect": Shape(extra="sockaddr"), "bind": Shape(extra="sockaddr"),
    "accept": Shape(extra="sockaddr"), "accept4": Shape(extra="sockaddr"),
    "execve": Shape((0,), argv=1), "execveat": Shape((1,), argv=2),
}
#: fcntl commands that duplicate a descriptor (F_DUPFD, F_DUPFD_CLOEXEC)
FCNTL_DUP = (0, 1030)


def syscall_numbers(machine: str | None = None) -> dict[str, int]:
    """Name -> number of the traced syscalls on this (or ``machine``'s) architecture."""
    machine = machine or platform.machine()
    table = {"x86_64": X86_64, "aarch64": AARCH64, "arm64": AARCH64}.get(machine)
    if table is None:
        raise ValueError(f"no syscall table for the architecture {machine}")
    numbers = {name: nr for nr, name in table.items()}
    return {name: numbers[name] for name in SYSCALLS if name in numbers}


@dataclass(frozen=True, slots=True)
class Target:
    """What to trace: the subtree of ``root`` (``ursprung run``), or, without a root, the
    node's processes of ``uids`` and ``cgroups`` (cgroup v2 paths; empty: all) except the
    processes in ``exclude`` (the collector and its tracer). ``ready_pid`` calls getpgid
    until the program says it is attached."""

    ready_pid: int
    root: int | None = None
    uids: tuple[int, ...] = ()
    cgroups: tuple[str, ...] = ()
    exclude: tuple[int, ...] = ()


def generate(target: Target, numbers: dict[str, int] | None = None) -> str:
    """The program's text for ``target`` (``numbers``: the syscalls to trace, by default
    all of :data:`SYSCALLS` this architecture has)."""
    numbers = numbers if numbers is not None else syscall_numbers()
    pred = _predicate(target)
    return "".join([
        _begin(target, numbers), _tasks(target, pred), _enter(numbers, pred),
        _exit(numbers),
        f"tracepoint:syscalls:sys_enter_getpgid /pid == {target.ready_pid}/ "
        '{ printf("R\\x1e\\n"); }\n',
        # bpftrace prints the maps left at its end: none are
        "END { clear(@w); clear(@a); clear(@ec); clear(@sg); "
        + ("clear(@t); }\n" if target.root is not None else "clear(@x); }\n"),
    ])


def _predicate(target: Target) -> str:
    if target.root is not None:
        return "@t[tid]"
    terms = ["!@x[pid]"]
    if target.uids:
        terms.append("(" + " || ".join(f"uid == {int(u)}" for u in target.uids) + ")")
    if target.cgroups:
        terms.append("(" + " || ".join(f'cgroup == cgroupid("{_c_string(c)}")'
                                       for c in target.cgroups) + ")")
    return " && ".join(terms)


def _c_string(text: str) -> str:
    if any(c in text for c in '"\\') or not text.isprintable():
        raise ValueError(f"cgroup path {text!r} cannot be put in a bpftrace program")
    return text


def _begin(target: Target, numbers: dict[str, int]) -> str:
    lines = [f"@w[{nr}] = 1;" for name, nr in sorted(numbers.items())]
    if target.root is not None:
        lines.append(f"@t[{int(target.root)}] = 1;")
    if target.root is None:  # bpftrace itself (BEGIN runs in it) and the excluded
        lines.append("@x[pid] = 1;")
        lines.extend(f"@x[{int(p)}] = 1;" for p in target.exclude)
    return "BEGIN { " + " ".join(lines) + " }\n"


def _tasks(target: Target, pred: str) -> str:
    """New tasks (a process or a thread: the clone flags say), execs, exits and the fatal
    signals that end a process without exit_group."""
    follow = "@t[args->pid] = 1; " if target.root is not None else ""
    gone = "delete(@t[tid]); " if target.root is not None else ""
    target_pred = "@t[args->pid]" if target.root is not None else "!@x[args->pid]"
    fatal = " || ".join(f"($g >= {lo} && $g <= {hi})" for lo, hi in FATAL_SIGNALS)
    return (
        f"tracepoint:task:task_newtask /{pred}/ {{ {follow}"
        'printf("N %d %d %lld %d %lld\\x1e\\n", tid, pid, nsecs, args->pid, '
        "args->clone_flags); }\n"
        f"tracepoint:sched:sched_process_exec /{pred}/ {{ "
        'printf("E %d %d %lld %d\\x1e\\n", tid, pid, nsecs, args->old_pid); }\n'
        # a fatal signal is turned into a group SIGKILL when it is sent: remember it then
        f"tracepoint:signal:signal_generate /{target_pred}/ {{ $g = (int64)args->sig; "
        f"if ({fatal}) {{ @sg[args->pid] = $g; }} }}\n"
        f"tracepoint:signal:signal_deliver /{pred}/ {{ $g = (int64)args->sig; "
        "if ($g == 9 && @sg[pid]) { $g = @sg[pid]; } "
        f"if (args->sa_handler == 0 && !@ec[pid] && ({fatal})) {{ @ec[pid] = 129 + $g; }} }}\n"
        f"tracepoint:sched:sched_process_exit /{pred}/ {{ {gone}"
        "$c = @ec[pid]; if (args->group_dead) { delete(@ec[pid]); delete(@sg[pid]); } "
        'printf("X %d %d %lld %d %d\\x1e\\n", tid, pid, nsecs, (int64)$c - 1, '
        "args->group_dead); }\n"
    )


def _no_nul(word: str) -> str:
    """True when the 64-bit ``word`` has no zero byte."""
    return f"((({word} - 0x0101010101010101) & ~{word} & 0x8080808080808080) == 0)"


def _strings(first: str, more: str, budget: int, exact: bool, var: str) -> str:
    """Print the string at ``first`` as an ``&`` line, then its further chunks as ``+`` lines
    while it is longer, then the same for the strings that ``more`` (a statement setting
    ``$<var>p`` to the next pointer, 0 at the end) yields; at most ``budget`` lines. One
    printf call site for all of them: bpftrace gives each site its own stack space.
    A continuation goes out when a chunk's last byte is not NUL and (``exact``) the
    :data:`LOOKBACK_WORDS` words before it hold none either: then the chunk is full, but
    for a short string whose memory happens to go on that way, whose continuation the
    reader drops (the chunk before it was short). A complete NUL search per chunk would
    be a loop in a loop, more than the verifier takes."""
    q, m, long_, p = (f"${var}q", f"${var}m", f"${var}l", f"${var}p")
    words = " && ".join(_no_nul(f"*(uint64 *)uptr({q} + {off})")
                        for off in range(CHUNK - 1 - 8 * LOOKBACK_WORDS, CHUNK - 8, 8))
    check = (f"{long_} = 0; if (*(uint8 *)uptr({q} + {CHUNK - 1}) != 0) {{ "
             + (f"if ({words}) {{ {long_} = 1; }} " if exact else f"{long_} = 1; ") + "} ")
    return (f"{q} = (uint64){first}; {m} = 0; $mark = 38; "
            f"while ({m} < {budget}) {{ if ({q} == 0) {{ break; }} "
            f'printf("%c %d\\x1f%s\\x1e\\n", $mark, tid, str(uptr({q}))); {check}'
            f"if ({long_} == 1) {{ {q} = {q} + {CHUNK}; $mark = 43; }} "
            f"else {{ {more} {q} = {p}; $mark = 38; }} {m}++; }} "
            f'if ({long_} == 1 && {m} >= {budget}) {{ printf("~ %d\\x1e\\n", tid); }}')


def _enter(numbers: dict[str, int], pred: str) -> str:
    """Save the arguments of traced calls; print exec's file name and argv now."""
    fcntl = numbers.get("fcntl")
    skip = (f"if ($id == {fcntl} && $r1 != {FCNTL_DUP[0]} "
            f"&& $r1 != {FCNTL_DUP[1]}) {{ $id = 0; }} " if fcntl is not None else "")
    execs = [(numbers[n], SYSCALLS[n]) for n in ("execve", "execveat") if n in numbers]
    pick = " ".join(
        f"if ($id == {nr}) {{ $fd = {'(int64)(int32)$r0' if sh.strings[0] else '-100'};"
        f" $name = $r{sh.strings[0]}; $argv = $r{sh.argv}; }}"
        for nr, sh in execs)
    is_exec = " || ".join(f"$id == {nr}" for nr, _ in execs) or "0"
    # the file name, then argv: one chunk each (an element longer than a chunk is cut;
    # the reader sees a full chunk and marks the argv as cut)
    exec_ = (f"if ({is_exec}) {{ $fd = (int64)-100; $name = (uint64)0; $argv = (uint64)0; "
             f"{pick} "
             'printf("%d %d %d %lld - %lld\\x1e\\n", $id, tid, pid, nsecs, $fd); '
             "$q = $name; $i = (uint64)0; "
             f"while ($i <= {MAX_ARGS}) {{ if ($q == 0) {{ break; }} "
             'printf("& %d\\x1f%s\\x1e\\n", tid, str(uptr($q))); '
             "$q = *(uint64 *)uptr($argv + $i * 8); $i++; } "
             'printf("; %d\\x1e\\n", tid); $id = 0; }')
    return (
        f"tracepoint:syscalls:sys_enter_exit_group /{pred}/ "
        "{ @ec[pid] = 1 + (args->error_code & 0xff); }\n"
        f"tracepoint:raw_syscalls:sys_enter /{pred} && @w[args->id]/ {{ $id = args->id; "
        "$r0 = args->args[0]; $r1 = args->args[1]; $r2 = args->args[2]; "
        "$r3 = args->args[3]; "
        f"{skip}{exec_} "
        "if ($id != 0) { @a[tid] = ($id, $r0, $r1, $r2, "
        "$r3); } }\n"
    )


def _exit(numbers: dict[str, int]) -> str:
    """One record per traced call that succeeded, then its strings."""
    def ids(extra: str) -> str:
        nrs = [numbers[n] for n, s in SYSCALLS.items() if s.extra == extra and n in numbers]
        return " || ".join(f"$a.0 == {nr}" for nr in nrs) or "0"

    first = []
    second = []
    for name, shape in SYSCALLS.items():
        if name not in numbers or not shape.strings or shape.argv is not None:
            continue
        nr = numbers[name]
        first.append(f"if ($a.0 == {nr}) {{ $s = $a.{1 + shape.strings[0]}; }}")
        if len(shape.strings) > 1:
            second.append(f"if ($a.0 == {nr}) {{ $s2 = $a.{1 + shape.strings[1]}; }}")
    connect = numbers.get("connect", -1)
    return (
        "tracepoint:raw_syscalls:sys_exit /@a[tid].0/ { $a = @a[tid]; delete(@a[tid]); "
        "$ret = args->ret; "
        f"if ($ret >= 0 || ($a.0 == {connect} && $ret == -{EINPROGRESS})) {{ "
        "$x0 = (int64)0; $x1 = (int64)0; $x2 = (int64)0; $s = (uint64)0; $s2 = (uint64)0; "
        f"if ({ids('pipe')}) {{ $x0 = (int64)*(int32 *)uptr($a.1); "
        "$x1 = (int64)*(int32 *)uptr($a.1 + 4); } "
        f"if ({ids('how')}) {{ $x0 = *(int64 *)uptr($a.3); }} "
        f"if ({ids('sockaddr')}) {{ $x0 = *(int64 *)uptr($a.2); "
        "$x1 = *(int64 *)uptr($a.2 + 8); $x2 = *(int64 *)uptr($a.2 + 16); "
        "if (($x0 & 0xffff) == 1) { $s = $a.2 + 2; "
        "if (*(uint8 *)uptr($s) == 0) { $s = $s + 1; $x2 = -1; } } } "
        + " ".join(first) + " " + " ".join(second) + " "
        'printf("%d %d %d %lld %lld %lld %lld %lld %lld %lld %lld %lld\\x1e\\n", $a.0, tid, '
        "pid, nsecs, $ret, $a.1, $a.2, $a.3, $a.4, $x0, $x1, $x2); "
        + _strings("$s", "$fp = $s2; $s2 = 0;", 2 * PATH_CHUNKS, True, "f")
        + " } }\n"
    )
