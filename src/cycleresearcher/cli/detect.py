"""`detect`: Fast-DetectGPT for machine-generated text."""

from __future__ import annotations

import typer

from . import app

detect_app = typer.Typer(help="Fast-DetectGPT detector for machine-generated papers.", no_args_is_help=True)
app.add_typer(detect_app, name="detect")
