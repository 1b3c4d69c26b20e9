"""`cycle`, `report`, `demo`: the research-review cycle and its report."""

from __future__ import annotations

from . import app
from .common import not_yet


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
