"""The `ursprung` command line (:mod:`.group`: the commands, one module each).

:func:`main` is the program. Before it imports the command line, it starts the command of
an `ursprung run` that nothing could stop (:mod:`.early`): the command then runs while
click, the configuration and the recorder are imported."""

from __future__ import annotations

import sys


def main() -> None:
    """`ursprung`: the command line, after `ursprung run`'s command has started if it may."""
    if sys.argv[1:2] != ["run"]:
        from .group import cli

        cli()
        return
    from . import early

    early.start(sys.argv[1:])
    try:
        from .group import cli

        cli()
    finally:
        early.finish()  # a command started that `run` never took (it failed to start)
