"""`train sft|simpo`, `cycle`, `report`, `demo`: training and the research-review cycle."""

from __future__ import annotations

import typer

from . import app
from .common import not_yet

train_app = typer.Typer(help="Supervised fine-tuning and SimPO training.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@app.command()
def cycle():
    """Run the cycle: sample papers, review them, build preference pairs, train SimPO + NLL, repeat."""
    not_yet("cycle")


@app.command()
def report():
    """Write report.md and reward.png for a run directory."""
    not_yet("report")


@app.command()
def demo():
    """The whole loop on the embedded model, small enough for a laptop."""
    not_yet("demo")
