"""`research`, `review`, `revise`: the two agents of the paper."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import not_yet


@app.command()
def research(topic: str = typer.Option(..., help="Research topic."), out: Path = typer.Option(..., help="Output folder.")):
    """Write a paper on a topic from references, in the CycleResearcher stages."""
    not_yet("research")


@app.command()
def review(paper: Path = typer.Argument(..., help="Paper: .tex, folder, archive, .pdf, .md/.txt.")):
    """Review a paper like a program committee: N reviews, a meta-review and a decision."""
    not_yet("review")


@app.command()
def revise(paper_dir: Path = typer.Argument(..., help="A folder written by `research`.")):
    """Revise a paper to answer its reviews."""
    not_yet("revise")
