"""The replicated service of the cluster simulation: a small forking HTTP server (one child
process per request, as pre-forking web and FTP servers do).

    python sim_server.py ROOT HOST PORT

ROOT holds ``www/`` (static pages), ``data/items.json``, ``uploads/`` and ``logs/``. Requests:

* ``GET /static/NAME``: a page from ``www/``;
* ``GET /api/items``: ``data/items.json``;
* ``POST /upload``: the body into ``uploads/`` under a fresh random name;
* ``GET /report``: ``data/items.json`` compressed by a ``gzip`` child process;
* ``GET /exec?cmd=...``: the vulnerability: ``cmd`` run by ``bash -c`` (the attack).

Every request appends a line to ``logs/access.log``. Once listening, the server writes
``ROOT/ready``.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ForkingMixIn
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    root = "."

    def log_message(self, format: str, *args: object) -> None:
        with open(os.path.join(self.root, "logs", "access.log"), "a", encoding="utf-8") as fh:
            fh.write(f"{self.address_string()} {format % args}\n")

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path.startswith("/static/"):
            name = os.path.basename(url.path)
            try:
                with open(os.path.join(self.root, "www", name), "rb") as fh:
                    self._send(200, fh.read())
            except OSError:
                self._send(404, b"no such page\n")
        elif url.path == "/api/items":
            with open(os.path.join(self.root, "data", "items.json"), "rb") as fh:
                self._send(200, fh.read())
        elif url.path == "/report":
            out = subprocess.run(["gzip", "-c", os.path.join(self.root, "data", "items.json")],
                                 capture_output=True, check=False)
            self._send(200, out.stdout)
        elif url.path == "/exec":
            cmd = parse_qs(url.query).get("cmd", [""])[0]
            out = subprocess.run(["bash", "-c", cmd], capture_output=True, check=False,
                                 cwd=self.root)
            self._send(200, out.stdout)
        else:
            self._send(404, b"not found\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        name = f"{secrets.token_hex(8)}.bin"
        with open(os.path.join(self.root, "uploads", name), "wb") as fh:
            fh.write(body)
        self._send(201, name.encode())


class ForkingHTTPServer(ForkingMixIn, HTTPServer):
    pass


def main() -> None:
    root, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    Handler.root = root
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit cleanly: exit_group is audited
    server = ForkingHTTPServer((host, port), Handler)
    with open(os.path.join(root, "ready"), "w", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
