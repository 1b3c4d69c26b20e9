"""The FastAPI app: a review page, job pages with live progress, and run browsing. Pages call the library; the
logic they need lives in pipeline.py (jobs), uploads.py (checks), runs.py (run folders) and render.py.

    app = create_app(WebConfig(runs=Path("runs"), backends=["local"]))
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import StreamingResponse

from ..errors import InputError, LimitExceeded
from . import render, runs, uploads
from .jobs import JobQueue
from .pipeline import DETECTOR_MEANING, REWARD_MEANING, SCALAR_MEANING, Services, WebConfig, review_job, review_options

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TOKEN_COOKIE = "cycleresearcher_token"
_FORM_SLACK = 1_000_000  # bytes of multipart framing and form fields allowed beyond the file limit


def _templates() -> Jinja2Templates:
    # autoescape on for every template: text from papers and reviews is data, never markup.
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["md"] = render.markdown
    env.filters["score_class"] = render.score_class
    env.globals["line_chart"] = render.line_chart
    env.globals["fmt"] = lambda v, d=2: "-" if not isinstance(v, (int, float)) else f"{v:.{d}f}"
    return Jinja2Templates(env=env)


class _BodyLimit:
    """ASGI middleware: refuse request bodies over the limit before the form parser spools them to disk."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = PlainTextResponse(_too_large(int(length), self.limit), status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise LimitExceeded(_too_large(seen, self.limit, at_least=True))
            return message

        return await self.app(scope, counted, send)


class _TokenCheck:
    """ASGI middleware: with a token configured, every request but /healthz carries it (?token=, the cookie that
    ?token= sets, or an Authorization: Bearer header)."""

    def __init__(self, app, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.token or scope["path"] == "/healthz":
            return await self.app(scope, receive, send)
        request = Request(scope)
        from_query = request.query_params.get("token", "")
        given = from_query or request.cookies.get(TOKEN_COOKIE) or \
            request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            response = PlainTextResponse("this server needs its access token: open the URL `cycleresearcher serve` "
                                         "printed (it ends in ?token=...)", status_code=401)
            return await response(scope, receive, send)
        if not from_query:
            return await self.app(scope, receive, send)

        async def with_cookie(message):
            if message["type"] == "http.response.start":
                cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                message["headers"] = list(message.get("headers", [])) + [(b"set-cookie", cookie.encode())]
            await send(message)

        return await self.app(scope, receive, with_cookie)


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    return (f"upload too large: {'over ' if at_least else ''}{size / 1e6:.3g} MB; the limit is "
            f"{(limit - _FORM_SLACK) / 1e6:.3g} MB")


def create_app(config: WebConfig, queue: Optional[JobQueue] = None, services: Optional[Services] = None) -> FastAPI:
    """The web app over `config`. Tests pass their own queue or services (e.g. with a scripted fake backend)."""
    queue = queue or JobQueue()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        queue.close()  # on server stop: queued jobs are dropped with their uploads

    app = FastAPI(title="cycleresearcher", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    templates = _templates()
    services = services or Services(config)
    app.state.config, app.state.queue, app.state.services = config, queue, services
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"config": config, **context}, status_code=status_code)

    app.add_middleware(_TokenCheck, token=config.token)
    app.add_middleware(_BodyLimit, limit=config.max_upload_bytes + _FORM_SLACK)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return page(request, "error.html", exc.status_code, message=str(exc.detail), status=exc.status_code)

    @app.exception_handler(runs.RunNotFound)
    async def not_found(request: Request, exc: runs.RunNotFound):
        return page(request, "error.html", 404, message=str(exc), status=404)

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError):
        status = 413 if isinstance(exc, LimitExceeded) else 400
        return page(request, "review.html", status, error=str(exc), jobs=queue.jobs()[:10], accept=uploads.ACCEPT,
                    form={})

    @app.get("/healthz")
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        return page(request, "review.html", jobs=queue.jobs()[:10], accept=uploads.ACCEPT, error="", form={})

    @app.post("/review")
    async def submit_review(request: Request):
        async with request.form(max_files=1, max_fields=10, max_part_size=config.max_upload_bytes + 1) as form:
            upload, text = form.get("file"), str(form.get("text") or "")
            options = review_options(dict(form), config)
            if upload is not None and not isinstance(upload, str) and upload.filename:
                data = await upload.read()  # at most the body limit: _BodyLimit stopped anything larger
                folder, path = await asyncio.to_thread(uploads.save_upload, upload.filename, data,
                                                       config.max_upload_bytes)
                label = uploads.safe_name(upload.filename)
            elif text.strip():
                folder, path = await asyncio.to_thread(uploads.save_pasted, text, config.max_upload_bytes)
                label = "pasted text"
            else:
                raise InputError("choose a paper file or paste the paper's text")
        job = queue.submit("review", label, lambda j: review_job(j, services, path, options), options,
                           cleanup=[lambda: uploads.remove_folder(folder)])
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    def get_job(job_id: str):
        job = queue.get(job_id)
        if job is None:
            raise StarletteHTTPException(404, f"no job {job_id!r} (jobs are kept in memory until the server stops)")
        return job

    @app.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: str):
        job = get_job(job_id)
        return page(request, "job.html", job=job, position=queue.position(job_id), rs=job.result.get("review_set"),
                    reward_meaning=REWARD_MEANING, scalar_meaning=SCALAR_MEANING, detector_meaning=DETECTOR_MEANING)

    @app.get("/jobs/{job_id}/status")
    def job_status(job_id: str) -> JSONResponse:
        return JSONResponse(get_job(job_id).snapshot(queue.position(job_id)))

    @app.get("/jobs/{job_id}/events")
    async def job_events(job_id: str):
        get_job(job_id)

        async def stream():
            last, quiet = "", 0.0
            while True:
                job = queue.get(job_id)
                if job is None:
                    return
                data = json.dumps(job.snapshot(queue.position(job_id)))
                if data != last or quiet >= 5.0:  # changes at once; otherwise a heartbeat with the elapsed time
                    yield f"event: progress\ndata: {data}\n\n"
                    last, quiet = data, 0.0
                if job.over:
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(0.25)
                quiet += 0.25

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/jobs/{job_id}/reviewset.json")
    def job_reviewset(job_id: str):
        job = get_job(job_id)
        if not job.result.get("review_set"):
            raise StarletteHTTPException(404, "this job has no ReviewSet (yet)")
        name = f"reviewset-{job.id}.json"
        return JSONResponse(job.result["review_set"], headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/runs", response_class=HTMLResponse)
    def runs_page(request: Request):
        return page(request, "runs.html", runs=runs.list_runs(config.runs), root=config.runs)

    @app.get("/runs/{name}", response_class=HTMLResponse)
    def run_page(request: Request, name: str):
        run = runs.load_run(config.runs, name)
        best = render.paper_view(run.best) if run.best else None
        return page(request, "run.html", run=run, best=best, pair_text=runs.pair_text)

    @app.get("/runs/{name}/reward.png")
    def run_plot(name: str):
        path = runs.run_dir(config.runs, name) / "reward.png"
        if not path.is_file():
            raise StarletteHTTPException(404, "this run has no reward.png yet (`cycleresearcher report` writes it)")
        return FileResponse(path, media_type="image/png")

    @app.get("/runs/{name}/papers/{paper_id}", response_class=HTMLResponse)
    def paper_page(request: Request, name: str, paper_id: str):
        paper, review, index = runs.find_paper(config.runs, name, paper_id)
        rs, scalar = runs.review_parts(review)
        return page(request, "paper.html", run_name=name, round=index, paper=render.paper_view(paper),
                    review=review, rs=rs, scalar=scalar, reward_meaning=REWARD_MEANING)

    return app
