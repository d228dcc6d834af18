"""Events of audit logs as libaudit's auparse reads them (Debian ``python3-audit``).

Run with the Debian Python that has the ``auparse`` binding::

    /usr/bin/python3 tests/reference/auparse_events.py LOG [LOG ...]

Prints one JSON object: log path -> list of events, each ``{"node", "stamp", "serial",
"types", "paths", "syscall"}`` where ``stamp`` is ``SEC.MSEC:SERIAL`` as in the log (None
for what auparse returns for text that is no record), ``types`` the record type names in
auparse's order, ``paths`` the PATH names as auparse interprets them and ``syscall`` a few
raw SYSCALL fields. Exits non-zero on any error: a broken reference is an error, not a
reason to skip.
"""

import json
import sys

import auparse

SYSCALL_FIELDS = ("syscall", "pid", "ppid", "exit", "success", "items")


def events(path):
    au = auparse.AuParser(auparse.AUSOURCE_FILE, path)
    out = []
    while au.parse_next_event():
        ts = au.get_timestamp()  # None for text that is no record (a comment line)
        ev = {"node": ts and ts.host, "serial": ts and ts.serial,
              "stamp": ts and f"{ts.sec}.{ts.milli:03d}:{ts.serial}",
              "types": [], "paths": [], "syscall": {}}
        if not au.first_record():
            out.append(ev)
            continue
        while True:
            try:
                rtype = au.get_type_name()
            except LookupError:  # text with no type= (a comment line)
                rtype = None
            ev["types"].append(rtype)
            if rtype is not None and au.first_field():
                while True:
                    name = au.get_field_name()
                    if rtype == "SYSCALL" and name in SYSCALL_FIELDS:
                        ev["syscall"][name] = au.get_field_str()
                    elif rtype == "PATH" and name == "name":
                        ev["paths"].append(au.interpret_field())
                    if not au.next_field():
                        break
            if not au.next_record():
                break
        out.append(ev)
    return out


def main(paths):
    json.dump({p: events(p) for p in paths}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
