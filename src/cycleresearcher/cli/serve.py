"""`serve`: the web UI (review a paper, browse runs) on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from .common import clean_errors, console


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback needs --token."),
    port: int = typer.Option(8000, help="Port to listen on."),
    runs: Path = typer.Option(Path("runs"), help="Folder of run directories to browse."),
    backend: List[str] = typer.Option(["local"], help="Reviewer backend spec offered on the page (repeat for "
                                                      "several): local, hf:PATH, openai:MODEL@URL, vllm:PATH, fake."),
    reward: Optional[Path] = typer.Option(None, help="Scalar reward model folder: adds its predicted rating and "
                                                     "accept probability to every review."),
    token: Optional[str] = typer.Option(None, help="Access token every request must carry (?token=, once)."),
    max_upload_mb: float = typer.Option(50.0, help="Largest upload, in MB."),
    reviewers: int = typer.Option(4, help="Default number of reviewers on the form."),
):
    """Serve the web UI: review a paper with live progress, browse runs and their papers."""
    from ..web import WebConfig
    from ..web.server import check_host, url
    from ..web.server import serve as run_server

    with clean_errors():
        config = WebConfig(runs=runs, backends=list(backend), reward=reward, token=token or "",
                           max_upload_mb=max_upload_mb, reviewers=reviewers)
        check_host(host, config.token)
        console.print(f"cycleresearcher web UI: [bold]{url(host, port, config.token)}[/bold]  (Ctrl-C stops)")
        run_server(config, host, port)
