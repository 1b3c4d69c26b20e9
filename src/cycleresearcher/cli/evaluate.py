"""`eval reviewer|papers`, `reward train|score`: evaluation with honest baselines.

    cycleresearcher reward train --data data/review --out runs/reward
    cycleresearcher reward score runs/reward paper.tex notes.md
    cycleresearcher eval reviewer --reviewer reward:runs/reward --data data/review --split test --out eval/
    cycleresearcher eval reviewer --reviewer local --data data/review --limit 20 --out eval-local/
    cycleresearcher eval papers runs/demo --judge reward:runs/reward
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from .app import app
from .common import clean_errors, console

eval_app = typer.Typer(help="Evaluate reviewers and generated papers.", no_args_is_help=True)
reward_app = typer.Typer(help="The fast scalar reward model.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(reward_app, name="reward")


def _fmt(estimate: Optional[dict[str, Any]]) -> str:
    if not estimate or estimate.get("value") is None:
        return "n/a"
    lo, hi = estimate.get("ci_low"), estimate.get("ci_high")
    ci = "" if lo is None or hi is None else f" [{lo:.3f}, {hi:.3f}]"
    return f"{estimate['value']:.3f}{ci}"


def _print_report(report: dict[str, Any]) -> None:
    from ..evaluate import METRICS

    names = list(report["systems"])
    table = Table(title=f"{report.get('reviewer', names[0])} on {report['n_papers']} papers "
                        f"(split {report.get('split', '?')}; 95% bootstrap CI, {report['n_resamples']} resamples)")
    table.add_column("metric")
    for n in names:
        table.add_column(n, justify="right")
    for m in METRICS:
        table.add_row(m, *[_fmt(report["systems"][n][m]) for n in names])
    console.print(table)
    for key, comp in report["comparisons"].items():
        console.print(f"{key}: " + "; ".join(f"{k} {_fmt(v)}" for k, v in comp.items()))
    excluded = {k: v for k, v in report["excluded"].items() if v}
    if excluded:
        console.print(f"[yellow]excluded papers: {excluded}[/yellow]")
    console.print("proxy error: each human reviewer left out in turn; the target is the mean of the others "
                  "(single_human is that reviewer's own error against the same target).")


@reward_app.command("train")
def reward_train(data: Path = typer.Option(..., help="Review dataset folder (datasets.save_to_disk) with a train split."),
                 out: Path = typer.Option(..., help="Folder for model.joblib + config.json."),
                 split: str = typer.Option("train", help="Split to train on."),
                 max_chunks: Optional[int] = typer.Option(None, help="Embedded chunks per paper (cost grows "
                                                                     "linearly; default: RewardConfig's)."),
                 chunk_tokens: Optional[int] = typer.Option(None, help="Tokens per chunk, <= 256 (default: "
                                                                       "RewardConfig's)."),
                 no_length: bool = typer.Option(False, "--no-length", help="Leave out the word/section count features.")):
    """Train the scalar reward model (predicted mean rating + accept probability) on a Review dataset."""
    from ..evaluate import load_split
    from ..reward import RewardConfig, RewardModel

    with clean_errors():
        cfg = RewardConfig(use_length=not no_length)
        cfg.chunk_tokens = chunk_tokens or cfg.chunk_tokens
        cfg.max_chunks = max_chunks or cfg.max_chunks
        model = RewardModel.train(load_split(data, split), cfg)
        model.save(out)
    console.print(f"saved to {out}: " + json.dumps({k: v for k, v in model.meta.items() if k != "features"}))


@reward_app.command("score")
def reward_score(model_dir: Path = typer.Argument(..., help="Folder written by `reward train`."),
                 files: list[Path] = typer.Argument(..., help="Papers: .tex, .pdf, .md, .txt, folders, archives."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table.")):
    """Score papers with the reward model: reward (predicted mean rating) and accept probability."""
    from ..paper_text import judge_text
    from ..reward import RewardModel

    with clean_errors():
        model = RewardModel.load(model_dir)
        scores = model.score([judge_text(f) for f in files])
    if as_json:
        for f, s in zip(files, scores):
            console.print_json(json.dumps({"file": str(f), **s}))
        return
    table = Table(title=f"reward model {model_dir}")
    table.add_column("paper")
    table.add_column("reward", justify="right")
    table.add_column("accept prob", justify="right")
    for f, s in zip(files, scores):
        table.add_row(str(f), f"{s['reward']:.2f}", f"{s['accept_prob']:.2f}")
    console.print(table)


@eval_app.command("reviewer")
def eval_reviewer(reviewer: str = typer.Option(..., help="reward:DIR, constant, length, or a backend spec "
                                                         "(local, hf:PATH, openai:MODEL@URL, ...)."),
                  data: Path = typer.Option(..., help="Review dataset folder with train and test splits."),
                  split: str = typer.Option("test", help="Split to evaluate on."),
                  limit: Optional[int] = typer.Option(None, help="Evaluate the first N papers only."),
                  out: Optional[Path] = typer.Option(None, help="Folder for report.json, calibration.png, predictions."),
                  resamples: int = typer.Option(1000, help="Bootstrap resamples."),
                  seed: int = typer.Option(0, help="Bootstrap seed."),
                  n_reviewers: int = typer.Option(4, help="Reviews per paper for a model reviewer.")):
    """Score a reviewer on a Review dataset beside the constant, single-human and length-only baselines."""
    from ..evaluate import evaluate_reviewer_spec

    with clean_errors():
        report = evaluate_reviewer_spec(reviewer, data, split=split, limit=limit, out_dir=out,
                                        n_resamples=resamples, seed=seed, n_reviewers=n_reviewers)
    _print_report(report)
    if out is not None:
        console.print(f"wrote {out / 'report.json'} and {out / 'calibration.png'}")


@eval_app.command("papers")
def eval_papers(run_dir: Path = typer.Argument(..., help="A cycle run folder (round-XX/papers.jsonl)."),
                judge: str = typer.Option(..., help="reward:DIR or a reviewer backend spec; not the training reward."),
                resamples: int = typer.Option(1000, help="Bootstrap resamples."),
                seed: int = typer.Option(0, help="Bootstrap seed."),
                out: Optional[Path] = typer.Option(None, help="Write the scores as JSON here.")):
    """Score each round's papers with an independent judge: mean and max rating per round with 95% CIs."""
    from ..evaluate import evaluate_papers
    from ..io import write_json_atomic

    with clean_errors():
        report = evaluate_papers(run_dir, judge, n_resamples=resamples, seed=seed)
        if out is not None:
            write_json_atomic(out, report)
    if report["judge_is_training_reward"]:
        console.print("[yellow]warning: this judge is the reward the run was trained on[/yellow]")
    table = Table(title=f"{run_dir} judged by {judge} (95% bootstrap CI)")
    for col in ("round", "papers", "scored", "mean", "max"):
        table.add_column(col, justify="left" if col == "round" else "right")
    for r in report["rounds"]:
        table.add_row(r["round"], str(r["n_papers"]), str(r["n_scored"]), _fmt(r.get("mean")), _fmt(r.get("max")))
    console.print(table)
