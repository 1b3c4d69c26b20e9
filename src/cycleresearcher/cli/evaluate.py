"""`eval reviewer|papers`, `reward train|score`: evaluation with honest baselines."""

from __future__ import annotations

import typer

from . import app

eval_app = typer.Typer(help="Evaluate reviewers and generated papers.", no_args_is_help=True)
reward_app = typer.Typer(help="The fast scalar reward model.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(reward_app, name="reward")
