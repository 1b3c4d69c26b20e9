"""The Typer application every command module registers on, and the root options (--verbose)."""

from __future__ import annotations

import logging
import os

import typer

from . import common, output

app = typer.Typer(
    name="cycleresearcher",
    help="Automated research improved by automated review: write, review and revise papers, build datasets, "
         "train the policy with SimPO + NLL in a cycle, evaluate reviewers, detect machine-generated text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details and show "
                                                                    "tracebacks of errors.")) -> None:
    common.VERBOSE = verbose
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    output.quiet_libraries(verbose)  # library warnings and chatter off the console unless --verbose
