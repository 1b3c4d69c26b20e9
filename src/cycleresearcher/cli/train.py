"""`train sft|simpo`: supervised fine-tuning and SimPO training.

    cycleresearcher train sft --model local --data data/research --out ckpt/researcher-sft --max-steps 20
    cycleresearcher train simpo --model local --pairs runs/demo/round-00/pairs.jsonl --out ckpt/simpo --lora
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .app import app
from .common import clean_errors, console

train_app = typer.Typer(help="Supervised fine-tuning and SimPO training.", no_args_is_help=True)
app.add_typer(train_app, name="train")

CONFIG_HELP = "YAML/JSON file of config keys (see the config dataclass); the options below override it."


def _print_metrics(metrics: dict, out: Path, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(metrics))
        return
    table = Table(title=f"trained -> hf:{out}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    losses = metrics.get("losses") or []
    rows = [("trainer", metrics.get("trainer")), ("steps", metrics.get("steps")),
            ("loss first -> last", f"{losses[0]:.4f} -> {losses[-1]:.4f}" if losses else "-")]
    if metrics.get("mean_margin_start") is not None:
        rows.append(("margin before -> after",
                     f"{metrics['mean_margin_start']:.4f} -> {metrics['mean_margin_end']:.4f}"))
    if "loss_on" in metrics:
        rows.append(("loss on", metrics["loss_on"]))
    rows += [("seconds", metrics.get("seconds")), ("peak RSS (MiB)", metrics.get("peak_rss_mb"))]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)


@train_app.command("sft")
def sft(
    model: str = typer.Option(..., "--model", help="local, a model folder, a .gguf file, or hf:FOLDER."),
    data: Path = typer.Option(..., "--data", help="Data set folder (load_from_disk), e.g. from `dataset research`."),
    out: Path = typer.Option(..., "--out", help="Checkpoint folder to write (loads as hf:OUT)."),
    split: str = typer.Option("train", "--split", help="Split of a DatasetDict to train on."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    lora: Optional[bool] = typer.Option(None, "--lora/--full", help="LoRA adapters (merged on save) or all weights."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Passes over the data."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default 2e-5 full, 2e-4 LoRA)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Supervised fine-tuning of the researcher or reviewer on a `messages` data set."""
    from ..train.launch import load_config, sft_from_disk
    from ..train.sft_config import SFTConfigLite

    with clean_errors():
        cfg = load_config(SFTConfigLite, config, {"lora": lora, "epochs": epochs, "learning_rate": lr,
                                                  "max_steps": max_steps})
        metrics = sft_from_disk(model, data, out, cfg, split)
    _print_metrics(metrics, out, as_json)


@train_app.command("simpo")
def simpo(
    model: str = typer.Option(..., "--model", help="local, a model folder, a .gguf file, or hf:FOLDER."),
    pairs: Path = typer.Option(..., "--pairs", help="pairs.jsonl (one PreferencePair per line)."),
    out: Path = typer.Option(..., "--out", help="Checkpoint folder to write (loads as hf:OUT)."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    lora: Optional[bool] = typer.Option(None, "--lora/--full", help="LoRA adapters (merged on save) or all weights."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Passes over the pairs."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default 1e-5 full, 1e-4 LoRA)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    beta: Optional[float] = typer.Option(None, "--beta", help="SimPO reward scale (default 2.0)."),
    nll_weight: Optional[float] = typer.Option(None, "--nll-weight", help="Weight of the NLL term (default 1.0)."),
    trainer: Optional[str] = typer.Option(None, "--trainer", help="auto | always (TRL) | never (our loop)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """SimPO + NLL preference training on pairs.jsonl."""
    from ..train.launch import load_config, simpo_from_files
    from ..train.simpo_config import SimPOConfig

    with clean_errors():
        cfg = load_config(SimPOConfig, config, {"lora": lora, "epochs": epochs, "learning_rate": lr,
                                                "max_steps": max_steps, "beta": beta, "nll_weight": nll_weight,
                                                "use_trl": trainer})
        metrics = simpo_from_files(model, pairs, out, cfg)
    _print_metrics(metrics, out, as_json)
