"""The web UI: `cycleresearcher serve`, FastAPI pages over the same library calls as the CLI.

    cycleresearcher serve --runs runs --backend local --reward runs/demo-reward-model

    from cycleresearcher.web import WebConfig, create_app
    app = create_app(WebConfig(runs=Path("runs")))

Pages: `/` review a paper (upload or paste; live progress; reviews, meta-review, decision, rewards, flags,
detector; the ReviewSet JSON), `/runs` and `/runs/NAME` (rounds, charts, papers by reward, pairs, the best
paper, spend), `/runs/NAME/papers/ID` (a generated paper with its disclosure and SIMULATED label).
"""

from __future__ import annotations

from .pipeline import Services, WebConfig

__all__ = ["Services", "WebConfig", "create_app", "serve"]


def create_app(config: WebConfig, **kwargs):
    """The FastAPI app (see app.create_app)."""
    from .app import create_app as _create

    return _create(config, **kwargs)


def serve(config: WebConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn until interrupted (see server.py)."""
    from .server import serve as _serve

    _serve(config, host, port)
