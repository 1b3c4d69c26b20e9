"""Helpers shared by the CLI modules: one console, and turning library errors into clean exits."""

from __future__ import annotations

import contextlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def clean_errors():
    """Show expected errors (bad input, missing model, budget) as one red line and exit 1, not a traceback."""
    from ..backends.base import BackendError

    try:
        yield
    except (BackendError, ValueError, FileNotFoundError, PermissionError) as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted; finished work is saved[/yellow]")
        sys.exit(130)


def not_yet(verb: str) -> None:
    err_console.print(f"[yellow]{verb}: not implemented yet[/yellow]")
    raise typer.Exit(2)
