"""Helpers shared by the CLI modules: one console, and turning errors into one clear line and an exit code."""

from __future__ import annotations

import contextlib
import logging
import sys

import click
import typer
from rich.console import Console
from rich.markup import escape

from ..errors import CycleResearcherError

console = Console()
err_console = Console(stderr=True)
log = logging.getLogger(__name__)

# Set by the root callback (`cycleresearcher --verbose ...`): show tracebacks instead of one line.
VERBOSE = False

# Builtin errors that mean bad input (a missing or unreadable file, a malformed value) rather than a bug.
INPUT_ERRORS = (ValueError, OSError, UnicodeError, LookupError)


def error_line(exc: BaseException) -> str:
    """The one line a user sees for an error: its message, with the file name when the OS error has one."""
    if isinstance(exc, OSError) and getattr(exc, "filename", None) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


@contextlib.contextmanager
def clean_errors():
    """Show errors as one red line (and a hint) and exit 1, not a traceback; `--verbose` keeps the traceback.

    The project's own errors (CycleResearcherError) and builtin input errors are expected; anything else is
    reported as an internal error with a pointer to --verbose."""
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted; finished work is saved[/yellow]")
        sys.exit(130)
    except CycleResearcherError as exc:
        _fail(exc, f"[red]error:[/red] {escape(error_line(exc))}", exc.hint)
    except INPUT_ERRORS as exc:
        _fail(exc, f"[red]error:[/red] {escape(error_line(exc))}")
    except (RecursionError, MemoryError) as exc:
        _fail(exc, f"[red]error:[/red] the input is too deeply nested or too large ({type(exc).__name__})")
    except Exception as exc:  # noqa: BLE001  (a bug: still one line, the traceback with --verbose)
        _fail(exc, f"[red]internal error:[/red] {type(exc).__name__}: {escape(error_line(exc))}",
              "run again with --verbose for the traceback, and please report it")


def _fail(exc: BaseException, line: str, hint: str = "") -> None:
    if VERBOSE:
        err_console.print_exception(show_locals=False)
    err_console.print(line, soft_wrap=True)
    if hint:
        err_console.print(f"[dim]hint: {escape(hint)}[/dim]", soft_wrap=True)
    raise typer.Exit(1) from exc
