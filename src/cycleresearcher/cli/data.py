"""`dataset review|research|stats`: build the Review and Research datasets."""

from __future__ import annotations

import typer

from . import app

dataset_app = typer.Typer(help="Build Review/Research datasets (Hugging Face datasets on disk).", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
