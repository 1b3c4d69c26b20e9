"""What reaches the console besides rich's tables: model text written exactly, and library noise kept off.

`write_plain` puts text on stdout as it is (rich would hard-wrap it at the terminal width and pad lines with
spaces). `quiet_libraries` keeps FutureWarning/DeprecationWarning from torch, transformers and TRL,
matplotlib's UserWarnings, transformers' advisory log lines and its "Loading weights" bars off the console
unless `--verbose`. Our own warnings go through `logging` and still show; so does anything a user asks for
with `python -W ...` or PYTHONWARNINGS."""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Loggers of libraries whose INFO/WARNING lines are advice to library developers, not to our users.
CHATTY_LOGGERS = ("transformers", "trl", "peft", "accelerate", "datasets", "huggingface_hub", "torch", "matplotlib")

# Environment read by those libraries when they are imported (commands import them lazily, after this runs).
QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
             "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
             "TOKENIZERS_PARALLELISM": "false"}


def write_plain(text: str) -> None:
    """Write `text` to stdout unchanged (UTF-8 bytes when the stream's encoding cannot hold it)."""
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()


def quiet_libraries(verbose: bool) -> None:
    """Silence third-party warnings and chatter for this process (nothing changes with `verbose`)."""
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if not sys.warnoptions:  # the user's own -W / PYTHONWARNINGS choices win
        # Every UserWarning comes from a library (our code reports through logging): matplotlib's "no artists
        # with labels", torch's and TRL's notices. matplotlib attributes its warnings to the caller's module, so
        # they cannot be told apart by module.
        for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # Libraries already imported in this process (tests, the web worker) read the environment no more.
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
