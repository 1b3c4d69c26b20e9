"""On-disk caching for the dataset sources: where the cache lives, cache-safe names, and a polite rate limiter.

Every raw response a source fetches is written to the cache first (through `cycleresearcher.io`, atomically),
so a rebuild reads only the disk and makes no network call. The writers are io's, re-exported here for the
modules that imported them from this one.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .. import io as _io
from ..errors import CycleResearcherError, InputError
from ..io import read_json, write_bytes_atomic, write_text_atomic  # noqa: F401  (re-exported)


class CacheMissError(CycleResearcherError, FileNotFoundError):
    """The cache lacks a response and the caller asked to stay offline."""


def default_cache_dir(source: str) -> Path:
    """Where a source caches raw responses: <home>/cache/<source>, home being io.home()."""
    return _io.home() / "cache" / source


def slug(text: str) -> str:
    """A file-name-safe form of a venue id, invitation or arXiv id.

    "ICLR.cc/2024/Conference" -> "ICLR.cc_2024_Conference".
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).strip("._")
    if not cleaned:
        raise InputError(f"cannot make a file name from {text!r}")
    return cleaned


def write_json_atomic(path: Path, value: Any) -> Path:
    """A cache file: compact, keys sorted (so a re-fetch of the same data writes the same bytes)."""
    return _io.write_json_atomic(path, value, indent=1, sort_keys=True)


class RateLimiter:
    """At most one call per `min_interval_s` seconds (OpenReview and arXiv ask clients to pace themselves).

    `clock` and `sleep` are injectable so tests run instantly.
    """

    def __init__(self, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")  # a programming error
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until the next call is allowed; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            waited = 0.0
            if self._last is not None:
                waited = max(0.0, self._last + self.min_interval_s - now)
                if waited:
                    self._sleep(waited)
            self._last = now + waited
            return waited
