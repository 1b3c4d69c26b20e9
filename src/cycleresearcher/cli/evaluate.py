"""`eval reviewer|papers`: evaluation with honest baselines (the reward commands are in cli/reward.py).

    cycleresearcher eval reviewer --reviewer reward:runs/reward --data data/review --split test --out eval/
    cycleresearcher eval reviewer --reviewer local --data data/review --limit 20 --out eval-local/
    cycleresearcher eval reviewer --reviewer reward:fit --data ../shared/data --split-by-year 2025 --hacking 100
    cycleresearcher eval papers runs/demo --judge reward:runs/reward
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from .app import app
from .common import clean_errors, console

eval_app = typer.Typer(help="Evaluate reviewers and generated papers.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


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


@eval_app.command("reviewer")
def eval_reviewer(reviewer: str = typer.Option(..., help="reward:DIR, reward:fit (train one on the train side), "
                                                         "constant, length, or a backend spec (local, hf:PATH, ...)."),
                  data: Path = typer.Option(..., help="Review dataset folder with train and test splits, or the "
                                                      "shared data folder with --split-by-year / --test-venue."),
                  split: str = typer.Option("test", help="Split to evaluate on."),
                  split_by_year: Optional[int] = typer.Option(None, help="Test on this year, train on the others."),
                  train_venue: Optional[str] = typer.Option(None, help="Train side: groups/venues with this prefix."),
                  test_venue: Optional[str] = typer.Option(None, help="Test side: groups/venues with this prefix."),
                  hacking: int = typer.Option(0, help="Run the hacking suite on N test papers (reward models)."),
                  limit: Optional[int] = typer.Option(None, help="Evaluate the first N papers only."),
                  out: Optional[Path] = typer.Option(None, help="Folder for report.json, calibration.png, predictions."),
                  resamples: int = typer.Option(1000, help="Bootstrap resamples."),
                  seed: int = typer.Option(0, help="Bootstrap seed."),
                  n_reviewers: int = typer.Option(4, help="Reviews per paper for a model reviewer.")):
    """Score a reviewer on a Review dataset beside the constant, single-human and length-only baselines."""
    from ..evaluate import evaluate_reviewer_spec
    from ..evaluate.splits import evaluate_reviewer_split

    with clean_errors():
        if split_by_year is not None or train_venue or test_venue or reviewer.strip() == "reward:fit" or hacking:
            report = evaluate_reviewer_split(reviewer, data, by_year=split_by_year, train_venue=train_venue,
                                             test_venue=test_venue, limit=limit, out_dir=out, n_resamples=resamples,
                                             seed=seed, n_reviewers=n_reviewers, hacking=hacking)
        else:
            report = evaluate_reviewer_spec(reviewer, data, split=split, limit=limit, out_dir=out,
                                            n_resamples=resamples, seed=seed, n_reviewers=n_reviewers)
    _print_report(report)
    suite = report.get("hacking_suite")
    if suite:
        console.print(f"hacking suite ({suite['n_papers']} papers): share scoring below the original: " + "; ".join(
            f"{k} {v['share_below']:.3f}" for k, v in suite["variants"].items()) + f" (passed: {suite['passed']})")
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
    if report.get("heldout"):  # the figures of report.md's held-out table, re-judged
        held = Table(title="held-out prompts (as in report.md)")
        for col in ("policy", "papers", "judge mean"):
            held.add_column(col, justify="left" if col == "policy" else "right")
        for h in report["heldout"]:
            held.add_row(h["label"], str(h["n_papers"]), _fmt(h.get("judge_mean")))
        console.print(held)
        diff = report.get("heldout_difference") or {}
        if diff.get("value") is not None:
            console.print(f"held-out judge {diff['from']} -> {diff['to']}: {_fmt(diff)}")
