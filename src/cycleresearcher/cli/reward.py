"""`reward train|score|probe`: the scalar reward model.

    cycleresearcher reward train --out models/reward                 # every shared source, card included
    cycleresearcher reward train --data data/review --out runs/rm     # a Review dataset's train split
    cycleresearcher reward score models/reward paper.tex notes.md
    cycleresearcher reward probe --model models/reward --group NeurIPS-2025 --limit 100 --generated 10
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .app import app
from .common import clean_errors, console

reward_app = typer.Typer(help="The fast scalar reward model.", no_args_is_help=True)
app.add_typer(reward_app, name="reward")


@reward_app.command("train")
def reward_train(out: Optional[Path] = typer.Option(None, help="Model folder (default: io.home()/reward/default)."),
                 data: Optional[Path] = typer.Option(None, help="The shared data folder (default: found as the "
                                                                "demo finds it) or a Review dataset folder."),
                 split: str = typer.Option("train", help="Split of a Review dataset to train on."),
                 heldout: str = typer.Option("NeurIPS-2025", help="Group evaluated for the model card by a model "
                                                                  "trained without it; 'none' to skip."),
                 probe_papers: int = typer.Option(100, help="Held-out papers in the card's hacking suite (0: skip)."),
                 resamples: int = typer.Option(1000, help="Bootstrap resamples for the card's intervals."),
                 objective: Optional[str] = typer.Option(None, help="pairwise (default) or pointwise."),
                 max_chunks: Optional[int] = typer.Option(None, help="Embedded chunks per paper."),
                 chunk_tokens: Optional[int] = typer.Option(None, help="Tokens per chunk, <= 256."),
                 no_length: bool = typer.Option(False, "--no-length", help="Leave out the word-count feature."),
                 no_embedding: bool = typer.Option(False, "--no-embedding", help="Hand-made features only.")):
    """Train the reward model (ranker within venue-years + accept head) and write its model card."""
    from ..data.reward_training import load_training_rows, train_with_card
    from ..reward import RewardConfig, default_reward_dir

    with clean_errors():
        cfg = RewardConfig(use_length=not no_length, use_embedding=not no_embedding)
        cfg.objective = objective or cfg.objective
        cfg.max_chunks = max_chunks or cfg.max_chunks
        cfg.chunk_tokens = chunk_tokens or cfg.chunk_tokens
        rows = load_training_rows(data, split)
        groups = {str(r.get("group") or "") for r in rows}
        held = None if heldout.lower() == "none" or not any(g.startswith(heldout) for g in groups) else heldout
        out = out or default_reward_dir()
        card = train_with_card(out, rows=rows, config=cfg, heldout=held, probe_papers=probe_papers,
                               n_resamples=resamples)
    console.print(f"saved to {out} (model card: {out / 'MODEL_CARD.md'}); "
                  + json.dumps({k: card["model_meta"][k] for k in ("n_train", "c", "n_features", "train_seconds")}))
    if card.get("heldout"):
        m = card["heldout"]["systems"]["model"]
        console.print(f"held-out {held}: Spearman {m['spearman']['value']}, AUC {m['roc_auc']['value']}")


def _read_text(path: Path) -> str:
    from ..paper_text import read_paper

    return read_paper(path).text


@reward_app.command("score")
def reward_score(model_dir: Path = typer.Argument(..., help="Folder written by `reward train`."),
                 files: list[Path] = typer.Argument(..., help="Papers: .tex, .pdf, .md, .txt, folders, archives."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table.")):
    """Score papers: reward (predicted mean rating, 1-10), accept probability, guard and injection flags."""
    from ..reward import RewardModel

    with clean_errors():
        model = RewardModel.load(model_dir)
        scores = model.score([_read_text(f) for f in files])
    if as_json:
        for f, s in zip(files, scores):
            console.print_json(json.dumps({"file": str(f), **s}))
        return
    table = Table(title=f"reward model {model_dir}")
    for col in ("paper", "reward", "accept prob", "percentile", "notes"):
        table.add_column(col, justify="left" if col in ("paper", "notes") else "right")
    for f, s in zip(files, scores):
        notes = "; ".join(s["flags"] + s["guard_reasons"] + s["missing_stages"])
        table.add_row(str(f), f"{s['reward']:.2f}", f"{s['accept_prob']:.2f}", f"{s['percentile']:.2f}", notes)
    console.print(table)


@reward_app.command("probe")
def reward_probe(model: Path = typer.Option(..., help="Folder written by `reward train`."),
                 data: Optional[Path] = typer.Option(None, help="Shared data folder (default: found)."),
                 group: str = typer.Option("NeurIPS-2025", help="Papers of this venue-year group are probed."),
                 limit: int = typer.Option(100, help="Papers probed."),
                 generated: int = typer.Option(0, help="Papers the embedded model writes for the same titles "
                                                       "(minutes each on CPU)."),
                 generator: str = typer.Option("local", help="Backend spec that writes those papers."),
                 out: Optional[Path] = typer.Option(None, help="Write the report as JSON here.")):
    """The hacking suite: share of rewritten papers (word salad, shuffled, padded, ...) scoring below the original."""
    from ..data.reward_training import run_probe
    from ..io import write_json_atomic

    with clean_errors():
        report = run_probe(model, data, group=group, limit=limit, n_generated=generated, generator=generator)
        if out is not None:
            write_json_atomic(out, report)
    table = Table(title=f"hacking suite: {report['n_papers']} papers of {group} "
                        f"(required share below {report['required_share']:.0%})")
    for col in ("variant", "papers", "share below", "mean reward", "passed"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for name, v in report["variants"].items():
        table.add_row(name, str(v["n"]), f"{v['share_below']:.3f}", f"{v['mean_score']:.2f}",
                      "exempt" if name in report["exempt"] else str(v["passed"]))
    console.print(table)
    if report.get("leak_probe"):
        lp = report["leak_probe"]
        console.print(f"leak probe (cue counts alone): AUC {lp['auc']:.3f} [{lp['ci'][0]:.3f}, {lp['ci'][1]:.3f}]")
    if report["trained_on_group"]:
        console.print("[yellow]the model was trained on this group; see its model card for the held-out run[/yellow]")
