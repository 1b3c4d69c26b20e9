"""`train sft|simpo`: supervised fine-tuning and SimPO training."""

from __future__ import annotations

import typer

from . import app

train_app = typer.Typer(help="Supervised fine-tuning and SimPO training.", no_args_is_help=True)
app.add_typer(train_app, name="train")
