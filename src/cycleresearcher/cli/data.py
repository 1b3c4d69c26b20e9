"""`dataset review|research|stats`: build the Review and Research datasets.

    cycleresearcher dataset review --source ../shared/data/reviews_real/reviews.jsonl --out data/review
    cycleresearcher dataset review --source openreview:ICLR.cc/2024/Conference@cache/or --out data/iclr24
    cycleresearcher dataset research --source arxiv:2411.00816 --out data/research --extractor heuristic
    cycleresearcher dataset stats data/review
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .app import app
from .common import clean_errors, console

dataset_app = typer.Typer(help="Build Review/Research datasets (Hugging Face datasets on disk).", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")

SOURCE_HELP = ("A local dump (reviews.jsonl, papers.jsonl.gz, a PeerRead folder), openreview:VENUE_ID[@CACHE_DIR] "
               "or arxiv:ID,ID[@CACHE_DIR]; join several with '+'.")


@dataset_app.command("review")
def review(
    source: str = typer.Option(..., "--source", help=SOURCE_HELP),
    out: Path = typer.Option(..., "--out", help="Output folder (a DatasetDict with train/validation/test)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the by-paper split hash."),
    split_by_year: Optional[int] = typer.Option(None, "--split-by-year",
                                                help="Papers from this year on form the test split."),
    offline: bool = typer.Option(False, "--offline", help="Read network sources from their cache only."),
) -> None:
    """One row per paper with all its human reviews; the target is the CycleReviewer-format review set."""
    from ..data.build import build_review_dataset

    with clean_errors():
        dd = build_review_dataset(source, out, seed=seed, split_by_year=split_by_year, offline=offline)
    _print_counts(dd, out)


@dataset_app.command("research")
def research(
    source: str = typer.Option(..., "--source", help=SOURCE_HELP),
    out: Path = typer.Option(..., "--out", help="Output folder (a DatasetDict with train/validation/test)."),
    extractor: str = typer.Option("heuristic", "--extractor",
                                  help="'heuristic' or a backend spec (local, openai:MODEL@URL, ...)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most this many papers."),
    seed: int = typer.Option(0, "--seed", help="Seed of the by-paper split hash."),
    accepted_only: bool = typer.Option(False, "--accepted-only", help="Keep accepted papers only."),
    offline: bool = typer.Option(False, "--offline", help="Read network sources from their cache only."),
) -> None:
    """One example per paper: prompt (topic + references) and target (the paper in the CycleResearcher format)."""
    from ..data.build import build_research_dataset

    with clean_errors():
        dd = build_research_dataset(source, out, extractor=extractor, limit=limit, seed=seed,
                                    accepted_only=accepted_only, offline=offline)
    _print_counts(dd, out)


@dataset_app.command("stats")
def stats(
    path: Path = typer.Argument(..., help="A dataset folder written by `dataset review` or `dataset research`."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Local tokenizer path (default: words)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Counts, rating histogram and token-length percentiles (p50/p90/p99)."""
    from ..data.build import dataset_stats

    with clean_errors():
        data = dataset_stats(path, tokenizer=tokenizer)
    if as_json:
        console.print_json(json.dumps(data, ensure_ascii=False))
        return
    review = data["kind"] == "review"
    table = Table(title=f"{data['kind']} dataset: {path}")
    for column in ["split", "papers"] + (["reviews"] if review else []) + ["decisions"]:
        table.add_column(column)
    for name, s in data["splits"].items():
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(s["decisions"].items()))
        table.add_row(name, str(s["papers"]), *([str(s["reviews"])] if review else []), decisions)
    console.print(table)
    if review:
        hist_table = Table(title="rating histogram (all splits)")
        hist_table.add_column("scale")
        hist_table.add_column("rating: count")
        merged: dict[str, dict[str, int]] = {}
        for s in data["splits"].values():
            for scale, hist in s["rating_histogram"].items():
                for rating, n in hist.items():
                    merged.setdefault(scale, {})[rating] = merged.get(scale, {}).get(rating, 0) + n
        for scale, hist in merged.items():
            ordered = sorted(hist.items(), key=lambda kv: int(kv[0]))
            hist_table.add_row(scale, "  ".join(f"{k}: {v}" for k, v in ordered))
        console.print(hist_table)
    tokens = Table(title=f"length in {data['token_unit']}")
    for column in ("split", "field", "p50", "p90", "p99", "max"):
        tokens.add_column(column)
    for name, s in data["splits"].items():
        for field, pct in s["tokens"].items():
            tokens.add_row(name, field, *(f"{pct[k]:.0f}" for k in ("p50", "p90", "p99", "max")))
    console.print(tokens)


def _print_counts(dd, out: Path) -> None:
    counts = ", ".join(f"{name} {ds.num_rows}" for name, ds in dd.items())
    console.print(f"wrote {out}: {counts} papers")
