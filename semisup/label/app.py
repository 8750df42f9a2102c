"""The labeling page: a Starlette application served by uvicorn (``semisup label``).

Routes (nothing else is served):

* ``GET /``: the page (the selection's rows and vocabularies embedded as JSON);
* ``GET /api/state``: the same rows and counts, as JSON;
* ``GET /api/strip/{row}``: makes (once) and lists the thumbnails of selected trailer ``row``;
* ``GET /thumb/{row}/{k}``: its ``k``-th thumbnail; ``GET /video/{row}``: its video (range requests:
  the player's scrubber);
* ``POST /api/answer``: ``{"row": n, "labels": {task: [labels]}, "status": "answered"}``, written at once;
* ``POST /api/merge``: merges the answers into the dataset's ``labels.csv`` (``semisup data label``'s checks);
* ``/static/...``: the page's own script and style.

Media are addressed by their position in the selection, never by a path: the
browser cannot name a file. :class:`Guard` checks every request first: the
``Host`` header on a loopback address (a web page elsewhere cannot reach the
server through DNS rebinding), the token when one is set (query ``?token=``
once, then a cookie; the ``X-Semisup-Token`` header on every POST), and for
POSTs a JSON body from the page's own origin (a form on another site cannot
post here).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from pathlib import Path
from typing import Any, AsyncIterator

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from semisup.errors import SemisupError
from semisup.label.answers import AnswerError, Row
from semisup.label.session import LabelSession
from semisup.label.thumbnails import stays_inside

HERE = Path(__file__).parent
COOKIE = "semisup_label_token"
TOKEN_HEADER = "x-semisup-token"


class Guard(BaseHTTPMiddleware):
    """Refuses what the page itself would never send (see the module's docstring).

    Args:
        app: the application.
        token: required on every request when set (bound off loopback); ``None`` on loopback.
        hosts: the ``Host`` values accepted when there is no token (``127.0.0.1:PORT``, ``localhost:PORT``).
    """

    def __init__(self, app: Any, token: str | None, hosts: tuple[str, ...]) -> None:
        super().__init__(app)
        self.token = token
        self.hosts = hosts

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        host = request.headers.get("host", "")
        if self.token is None and host not in self.hosts:
            return PlainTextResponse(f"host {host!r} is not served here (open http://{self.hosts[0]}/)", 403)
        from_query = request.query_params.get("token")
        if self.token is not None:
            given = request.headers.get(TOKEN_HEADER) or request.cookies.get(COOKIE) or from_query or ""
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                return PlainTextResponse("a token is needed: open the URL `semisup label` printed", 403)
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin is not None and origin != f"{request.url.scheme}://{host}":
                return PlainTextResponse(f"origin {origin!r} may not post here", 403)
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return PlainTextResponse("expected a JSON body (Content-Type: application/json)", 415)
            if self.token is not None and not secrets.compare_digest(
                    request.headers.get(TOKEN_HEADER, "").encode(), self.token.encode()):
                return PlainTextResponse("a POST needs the X-Semisup-Token header", 403)
        response = await call_next(request)
        if self.token is not None and from_query:  # the URL's token becomes a cookie for images and the video
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return response


def create_app(session: LabelSession, token: str | None = None,
               hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), prepare: bool = True) -> Starlette:
    """The page's ASGI application for ``session``.

    Args:
        session: what to show and where answers go.
        token: required on every request when set.
        hosts: ``Host`` header values accepted without a token.
        prepare: make thumbnail strips ahead of the person in a background thread.
    """
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
    merge_lock = threading.Lock()

    def state() -> dict[str, Any]:
        answers = session.answers
        done = answers.first_open()
        return {"title": session.title, "token": token,
                "tasks": [{"name": t.name, "kind": t.kind, "labels": list(t.labels)} for t in session.tasks],
                "rows": [_row_json(row, session) for row in answers.rows()], "counts": answers.counts(),
                "start": min(done, max(0, len(answers) - 1)), "done": done,
                "merge": {"enabled": session.root is not None, "note": session.merge_note,
                          "target": str(session.root / session.labels_file) if session.root else ""}}

    async def page(request: Request) -> Response:
        text = json.dumps(state()).replace("</", "<\\/")  # nothing in it can close the script element
        html = templates.get_template("page.html").render(title=session.title, state_json=text)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def api_state(request: Request) -> Response:
        return JSONResponse(state(), headers={"Cache-Control": "no-store"})

    def strip(request: Request) -> Response:  # sync: Starlette runs it in a worker thread
        row = _position(request, session)
        sample = session.samples[row]
        if sample is None:
            return JSONResponse({"thumbs": [], "unreadable": 0, "video": None, "missing": True})
        made = session.thumbnails.strip(sample)
        return JSONResponse({"thumbs": [f"/thumb/{row}/{k}" for k in range(len(made.files))],
                             "unreadable": made.unreadable, "missing": False,
                             "video": f"/video/{row}" if sample.video is not None else None})

    def thumb(request: Request) -> Response:
        row = _position(request, session)
        sample = session.samples[row]
        k = request.path_params["k"]
        files = session.thumbnails.strip(sample).files if sample is not None else []
        if not 0 <= k < len(files):
            return PlainTextResponse("no such thumbnail", 404)
        return FileResponse(files[k], media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    def video(request: Request) -> Response:
        sample = session.samples[_position(request, session)]
        if sample is None or sample.video is None or not stays_inside(Path(sample.video)):
            return PlainTextResponse("no video for this trailer", 404)
        return FileResponse(sample.video)

    async def answer(request: Request) -> Response:
        body = await _json(request)
        try:
            row = await run_in_threadpool(session.answers.save, body.get("row"), body.get("labels") or {},
                                          body.get("status", "answered"))  # a synced write: off the event loop
        except AnswerError as exc:
            return JSONResponse({"error": str(exc)}, 422)
        except SemisupError as exc:  # the disk refused the write: nothing changed
            return JSONResponse({"error": str(exc)}, 507)
        return JSONResponse({"row": _row_json(row, session), "counts": session.answers.counts(),
                             "done": session.answers.first_open()})

    def merge(request: Request) -> Response:
        with merge_lock:
            try:
                merged = session.merge()
            except SemisupError as exc:
                lines = str(exc).splitlines()
                return JSONResponse({"error": lines[0], "problems": lines[1:]}, 422)
        left = len(session.answers) - len(merged.labeled) - len(merged.already)
        return JSONResponse({"labeled": merged.labeled, "already": merged.already, "left": left,
                             "labels_file": str(merged.labels_file), "backup": str(merged.backup)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()
        if prepare:
            threading.Thread(target=_prepare, args=(session, stop), daemon=True, name="thumbnails").start()
        yield
        stop.set()

    routes = [Route("/", page), Route("/api/state", api_state), Route("/api/strip/{row:int}", strip),
              Route("/thumb/{row:int}/{k:int}", thumb), Route("/video/{row:int}", video),
              Route("/api/answer", answer, methods=["POST"]), Route("/api/merge", merge, methods=["POST"]),
              Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]
    return Starlette(routes=routes, middleware=[Middleware(Guard, token=token, hosts=hosts)],
                     lifespan=lifespan, max_body_size=1 << 20)


def _row_json(row: Row, session: LabelSession) -> dict[str, Any]:
    sample = session.samples[row.index]
    return {"index": row.index, "id": row.id, "rank": row.rank, "score": row.score, "status": row.status,
            "guess": {k: list(v) for k, v in row.guess.items()}, "answer": {k: list(v) for k, v in row.answer.items()},
            "missing": sample is None}


def _position(request: Request, session: LabelSession) -> int:
    from starlette.exceptions import HTTPException

    row = request.path_params["row"]
    if not 0 <= row < len(session.samples):
        raise HTTPException(404, f"no selected trailer at position {row}")
    return row


async def _json(request: Request) -> dict[str, Any]:
    from starlette.exceptions import HTTPException

    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "expected a JSON object")
    return body


def _prepare(session: LabelSession, stop: threading.Event) -> None:
    """Make the strips from the first open trailer on, then the ones before it (a person goes forward)."""
    start = session.answers.first_open()
    order = list(range(start, len(session.samples))) + list(range(start))
    for index in order:
        if stop.is_set():
            return
        sample = session.samples[index]
        if sample is not None:
            try:
                session.thumbnails.strip(sample)
            except (OSError, SemisupError):  # a full disk: the page asks again and shows the reason
                return
