"""`cycleresearcher generate`: a quick check of any backend."""

from __future__ import annotations

import typer

from . import app
from .common import not_yet


@app.command()
def generate(prompt: str = typer.Argument(..., help="User message to send."),
             backend: str = typer.Option("local", help="Backend spec: local, hf:PATH, openai:MODEL@URL, vllm:PATH.")):
    """Generate a reply from a backend."""
    not_yet("generate")
