"""The one root of every error this project raises on purpose.

The CLI catches `CycleResearcherError` and prints its message as one line (with the hint, when there is one);
anything else is a bug and keeps its traceback. Subclasses also derive from the builtin that matches their
meaning (ValueError for bad input, RuntimeError for a failed step), so callers that catch builtins still work.
"""

from __future__ import annotations


class CycleResearcherError(Exception):
    """Root of the project's errors. `hint` is an optional next step shown under the message."""

    hint: str = ""

    def __init__(self, message: str = "", *, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class InputError(CycleResearcherError, ValueError):
    """A file, option or record the user gave cannot be used (missing, empty, malformed, out of range)."""


class LimitExceeded(InputError):
    """An input is larger or deeper than a safety limit allows (bytes, nesting, expansions, time)."""


class ConfigError(InputError):
    """A config or preset has unknown keys, wrong types or values out of range."""


class StepError(CycleResearcherError, RuntimeError):
    """A step of the work could not finish (training, an experiment runner, embeddings, a model load)."""
