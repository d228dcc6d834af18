"""`ursprung serve`: the GraphQL API (and GraphiQL, health, metrics) on uvicorn."""

from __future__ import annotations

import click

from .common import classifier, open_graph


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token-file.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to bind (0: any free port).")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="File holding the bearer token every request but /healthz must carry.")
def serve_cmd(host: str, port: int, token_file: str | None) -> None:
    """Serve the read-only GraphQL API on /graphql (GraphiQL in a browser), the GUI on
    /gui, /healthz and /metrics."""
    import uvicorn

    from ..api.app import create_app
    from ..api.security import check_bind, read_token
    from ..config import load_settings
    from ..content import ContentStore

    token = read_token(token_file) if token_file else None
    check_bind(host, token)
    content = ContentStore(load_settings().home / "content")
    app = create_app(open_graph(), token=token, classifier=classifier(), content=content)
    click.echo(f"serving http://{host}:{port}/gui and /graphql"
               + (" (bearer token required)" if token else ""), err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
