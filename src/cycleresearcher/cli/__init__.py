"""The `cycleresearcher` command. Each verb lives in a module of this package that registers itself on `app`.

The CLI holds no logic: a command parses options, calls one library function, and prints.
"""

from __future__ import annotations

import logging
import os

import typer

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
    from . import common

    common.VERBOSE = verbose
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _load_commands() -> None:
    # Import for side effects: each module adds its commands to `app`.
    from . import agents, cycle, data, detect, evaluate, models, train  # noqa: F401
    from . import serve  # noqa: F401  (the web UI)


_load_commands()


def main() -> None:
    app()
