"""`detect`: Fast-DetectGPT for machine-generated text.

    cycleresearcher detect paper.tex draft.pdf notes.md
    cycleresearcher detect calibrate --human h1.txt h2.txt --machine m1.txt m2.txt --out cal.json
    cycleresearcher detect paper.tex --calibration cal.json --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click
import typer
from typer.core import TyperCommand, TyperGroup

from .app import app
from .common import clean_errors, console


class _FilesByDefault(TyperGroup):
    """`detect FILE...` means `detect score FILE...`; `detect calibrate ...` is the other subcommand.

    A group cannot also take files, so anything that is not a subcommand name (or --help) is routed to the
    default `score` command. A file literally named after a subcommand can be given as ./calibrate.
    """

    default_command = "score"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


class _ManyValuesPerOption(TyperCommand):
    """Lets `--human a b c` stand for `--human a --human b --human c` (click takes one value per flag).

    So a shell glob works: `--human human/*.txt --machine machine/*.txt`.
    """

    many = ("--human", "--machine")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out, current = [], None
        for arg in args:
            if arg in self.many:
                current = arg
            elif arg.startswith("-"):
                current = None
            elif current is not None and out and out[-1] != current:
                out.append(current)
            out.append(arg)
        return super().parse_args(ctx, out)


detect_app = typer.Typer(cls=_FilesByDefault, no_args_is_help=True, subcommand_metavar="FILE... | calibrate ...",
                         help="Fast-DetectGPT detector for machine-generated papers. "
                              "`detect FILE...` scores files; `detect calibrate` fits the probability map.")
app.add_typer(detect_app, name="detect")

_SCORING = typer.Option("local", "--scoring-model", help="Scoring model: local (embedded SmolLM2) or a model folder.")
_SAMPLING = typer.Option(None, "--sampling-model",
                         help="Sampling model (same tokenizer as the scoring model); default: the scoring model.")
_MAX_TOKENS = typer.Option(512, "--max-tokens", help="Window length in tokens; longer texts are scored in windows.")


@detect_app.command("score")
def score(files: list[Path] = typer.Argument(..., help="Documents (.tex, .pdf, .md, .txt, ...) or folders of "
                                                       "them; for a LaTeX project give its main .tex."),
          scoring_model: str = _SCORING,
          sampling_model: Optional[str] = _SAMPLING,
          calibration: Optional[Path] = typer.Option(
              None, "--calibration", help="Calibration JSON from `detect calibrate`; default: the built-in one "
                                          "(fitted on 120-token abstracts with the embedded model)."),
          max_tokens: int = _MAX_TOKENS,
          as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """Score files (the default: `detect FILE...`): criterion, probability of machine generation, verdict."""
    from ..detect import detect_files

    with clean_errors():
        results = detect_files(files, scoring_model, sampling_model, calibration, max_tokens=max_tokens)
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in results]))
        return
    from rich.table import Table

    table = Table(title="Fast-DetectGPT", caption="criterion: higher = more machine-like")
    table.add_column("file", overflow="fold")
    for column in ("tokens", "criterion", "P(machine)"):
        table.add_column(column, justify="right")
    table.add_column("verdict")
    for r in results:
        colour = "red" if r.verdict == "machine" else "green"
        table.add_row(r.path, str(r.n_tokens), f"{r.criterion:.3f}", f"{r.probability:.3f}",
                      f"[{colour}]{r.verdict}[/{colour}]")
    console.print(table)


@detect_app.command("calibrate", cls=_ManyValuesPerOption)
def calibrate(human: list[Path] = typer.Option(..., "--human", help="Human-written files or folders."),
              machine: list[Path] = typer.Option(..., "--machine", help="Machine-generated files or folders."),
              out: Path = typer.Option(..., "--out", help="Where to write the calibration JSON."),
              scoring_model: str = _SCORING,
              sampling_model: Optional[str] = _SAMPLING,
              max_tokens: int = _MAX_TOKENS,
              as_json: bool = typer.Option(False, "--json", help="Print the calibration as JSON.")):
    """Fit the logistic map from criterion to probability on labelled files and save it."""
    from ..detect import calibrate_files

    with clean_errors():
        cal = calibrate_files(human, machine, out, scoring_model, sampling_model, max_tokens=max_tokens)
    if as_json:
        console.print_json(json.dumps(cal.to_dict()))
        return
    console.print(f"calibration saved to [bold]{out}[/bold]: P(machine) = sigmoid({cal.slope:.3f} * D "
                  f"{cal.intercept:+.3f}); threshold D = {cal.threshold:.2f} at {cal.reference_tokens} tokens")
