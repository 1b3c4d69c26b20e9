"""`cycle`, `report`, `demo`: the research-review cycle and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import StepError
from .app import app
from .common import clean_errors, console


def print_summary(summaries) -> None:
    from rich.table import Table

    table = Table(title="Rounds")
    for column in ("round", "papers", "rewarded", "mean reward", "max", "pairs", "last loss", "seconds"):
        table.add_column(column, justify="right")
    for s in summaries:
        m = s.metrics
        table.add_row(str(m.round), str(m.n_papers), str(m.n_reviewed),
                      "-" if m.mean_reward is None else f"{m.mean_reward:.2f}",
                      "-" if m.max_reward is None else f"{m.max_reward:.2f}", str(m.n_pairs),
                      f"{m.losses[-1]:.4f}" if m.losses else "-", f"{sum(m.seconds.values()):.0f}")
    console.print(table)


@app.command()
def cycle(
    out: Path = typer.Option(..., help="Run directory (runs/NAME)."),
    preset: Optional[str] = typer.Option(None, help="Start from a packaged preset: tiny, demo or gpu-8b (the "
                                                    "paper's recipe at scale); the flags below override it."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="YAML CycleConfig (over the preset; the "
                                                                      "flags below override it)."),
    prompts: Optional[Path] = typer.Option(None, help="Topics file (one per line) or JSONL with a topic field."),
    bib: Optional[Path] = typer.Option(None, help="References for the prompts: .bib, JSONL or a folder."),
    rounds: Optional[int] = typer.Option(None, help="Training rounds [default: 2]."),
    samples: Optional[int] = typer.Option(None, help="Papers sampled per prompt per round (K) [default: 3]."),
    policy: Optional[str] = typer.Option(None, help="Initial policy: local or hf:PATH [default: local]."),
    reviewer: Optional[str] = typer.Option(None, help="Reward: a reviewer backend spec, or reward:DIR (scalar "
                                                      "model) [default: local]."),
    review_mode: Optional[str] = typer.Option(None, help="Reviewer mode: auto, set or per-review."),
    max_prompts: Optional[int] = typer.Option(None, help="Use only the first N prompts (0: all)."),
    prompts_per_round: Optional[int] = typer.Option(None, help="Prompts drawn per round (0: all)."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Tokens per sampled paper [default: 768]."),
    reviewers: Optional[int] = typer.Option(None, help="Reviews per paper (reviewer backends) [default: 4]."),
    lora: Optional[bool] = typer.Option(None, "--lora/--no-lora", help="Train LoRA adapters (merged into each "
                                                                      "checkpoint)."),
    learning_rate: Optional[float] = typer.Option(None, help="SimPO learning rate (default: CPU default)."),
    seed: Optional[int] = typer.Option(None, help="Seed [default: 0]."),
    max_tokens: Optional[int] = typer.Option(None, help="Token budget; the run stops cleanly when spent."),
    max_seconds: Optional[float] = typer.Option(None, help="Time budget in seconds for this invocation."),
    resume: bool = typer.Option(False, help="Continue the run in OUT; only --rounds, --max-tokens and "
                                            "--max-seconds may change."),
    allow_no_pairs: bool = typer.Option(False, "--allow-no-pairs", help="Exit 0 even when a round made no "
                                                                        "preference pairs (its policy was not "
                                                                        "trained)."),
):
    """Run the cycle: sample papers, review them, build preference pairs, train SimPO + NLL, repeat.

    Exits 1 (after writing the report) when a round made no preference pairs, unless --allow-no-pairs."""
    from ..outcome import rounds_without_pairs
    from ..train.cycle import run_cycle
    from ..train.cycle_config import cycle_config_from_options
    from ..train.report import write_report

    with clean_errors():
        config = cycle_config_from_options(
            out=out, preset=preset, config_file=config_file, resume=resume,
            flat={"prompts_file": str(prompts) if prompts else None, "bib": str(bib) if bib else None,
                  "rounds": rounds, "samples": samples, "policy": policy, "reviewer": reviewer,
                  "max_prompts": max_prompts, "prompts_per_round": prompts_per_round, "seed": seed,
                  "max_tokens": max_tokens, "max_seconds": max_seconds},
            nested={"research": {"max_new_tokens": max_new_tokens},
                    "review": {"n_reviewers": reviewers, "mode": review_mode},
                    "simpo": {"lora": lora, "learning_rate": learning_rate}})
        metrics = run_cycle(out, config, resume=resume, progress=True)
        report_path, summaries = write_report(out)
    print_summary(summaries)
    console.print(f"report: {report_path}")
    idle = rounds_without_pairs(metrics)
    if idle and not allow_no_pairs:
        with clean_errors():
            raise StepError(f"round(s) {', '.join(map(str, idle))} made no preference pairs, so the policy was not "
                            "trained there (no prompt had two rewarded samples with different rewards)",
                            hint="check the reviews (round-NN/reviews.jsonl) and the review mode (--review-mode), "
                                 "sample more per prompt (--samples), or pass --allow-no-pairs")


@app.command()
def report(run: Path = typer.Argument(..., help="A run directory written by `cycle`.")):
    """Write report.md and reward.png for a run directory and print the rounds."""
    from ..train.report import write_report

    with clean_errors():
        report_path, summaries = write_report(run)
    print_summary(summaries)
    console.print(f"report: {report_path}\nplot:   {run / 'reward.png'}")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Run directory."),
    data: Optional[Path] = typer.Option(None, help="The shared data folder (default: ../shared/data if present)."),
    rounds: Optional[int] = typer.Option(None, help="Rounds (default: the demo preset's)."),
    samples: Optional[int] = typer.Option(None, help="Papers per train prompt per round (default: the preset's)."),
    prompts: Optional[int] = typer.Option(None, help="Topics used from topics.txt, train and held out (default: "
                                                     "the preset's)."),
    reviewer: str = typer.Option("auto", help="auto (the default reward model, reward v2), or a judge spec "
                                              "such as reward:DIR or local."),
    fresh: bool = typer.Option(False, help="Delete OUT first instead of resuming it."),
):
    """The whole loop on the embedded model, small enough for a laptop: warm start, 2 rounds, an independent
    held-out judge (about 10 minutes on 2 cores)."""
    from ..demo import run_demo

    with clean_errors():
        report_path, summaries, seconds, peak_mb = run_demo(out, data, rounds=rounds, samples=samples,
                                                            n_prompts=prompts, reviewer=reviewer, fresh=fresh)
    print_summary(summaries)
    console.print(f"demo finished in {seconds:.0f} s (peak memory {peak_mb:.0f} MB)")
    console.print(f"report: {report_path}")
