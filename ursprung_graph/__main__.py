"""`python -m ursprung_graph` is the `ursprung` command."""

from .cli import main

main()
