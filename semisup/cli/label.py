"""``semisup label``: the labeling page for a run's selection, served on this machine."""

from __future__ import annotations

import errno
import secrets
import socket
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from semisup.cli.app import app, console
from semisup.errors import SemisupError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TRIES = 20
"""Ports tried after a busy default one (as Jupyter does)."""


@app.command("label")
def label(
    run_dir: Path = typer.Argument(..., help="The trained run whose selection to label."),
    selection: Optional[Path] = typer.Argument(None, help="The CSV `semisup select` wrote "
                                                          "(default RUN_DIR/select.csv); answers are written into it."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; any other than loopback needs a token."),
    port: int = typer.Option(8765, "--port", help="Port (0: any free one; a busy 8765 tries the next ones)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="SEMISUP_LABEL_TOKEN",
                                        help="Require this token (default: none on loopback, a random one "
                                             "elsewhere)."),
    frames: int = typer.Option(12, "--frames", min=1, max=64, help="Thumbnails per trailer."),
) -> None:
    """Label the selected trailers in the browser: thumbnails in time order, the model's guess filled in,
    keyboard first; every answer is saved at once, and Merge writes them into labels.csv."""
    import uvicorn

    from semisup.label.app import create_app
    from semisup.label.session import open_session

    session = open_session(run_dir, selection, frames)
    loopback = host in LOOPBACK
    if not loopback and not token:
        token = secrets.token_urlsafe(24)
    sock = _bind(host, port, retry=port == 8765)
    bound = sock.getsockname()[1]
    name = f"[{host}]" if ":" in host else host
    hosts = tuple(f"{h}:{bound}" for h in ("127.0.0.1", "localhost", "[::1]")) if loopback else ()
    app_ = create_app(session, token, hosts)
    url = f"http://{name}:{bound}/" + (f"?token={token}" if token else "")
    counts = session.answers.counts()
    console.print(f"{len(session.answers)} trailers of {escape(str(session.answers.path))}, "
                  f"{len(session.answers) - counts['open']} done; open [bold]{escape(url)}[/]")
    console.print("answers are saved as they are given; Ctrl+C stops the page")
    server = uvicorn.Server(uvicorn.Config(app_, log_level="warning", access_log=False, lifespan="on"))
    server.run(sockets=[sock])


def _bind(host: str, port: int, retry: bool) -> socket.socket:
    """A listening socket on ``host:port`` (the next free port after a busy default one).

    Raises:
        SemisupError: the address cannot be bound (in use, not this machine's, not allowed).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for candidate in range(port, port + (TRIES if retry else 1)):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
            sock.listen(128)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and candidate + 1 < port + (TRIES if retry else 1):
                continue
            raise SemisupError(f"--host {host} --port {candidate}: cannot listen there ({exc.strerror or exc}); "
                               "choose another --port (0 picks a free one)") from None
    raise AssertionError("unreachable")
