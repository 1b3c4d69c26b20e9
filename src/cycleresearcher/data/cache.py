"""On-disk caching for the dataset sources: atomic writes, JSON files, and a polite rate limiter.

Every raw response a source fetches is written here first, so a rebuild reads only the disk and makes no
network call. Writes go to a temporary file in the same folder and are then renamed, so a crash never
leaves a half-written cache file that a later run would trust.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable


class CacheMissError(FileNotFoundError):
    """The cache lacks a response and the caller asked to stay offline."""


def default_cache_dir(source: str) -> Path:
    """Where a source caches raw responses: $CYCLERESEARCHER_HOME/cache/<source> (default ~/.cycleresearcher)."""
    home = os.environ.get("CYCLERESEARCHER_HOME") or os.path.join(os.path.expanduser("~"), ".cycleresearcher")
    return Path(home) / "cache" / source


def slug(text: str) -> str:
    """A file-name-safe form of a venue id, invitation or arXiv id.

    "ICLR.cc/2024/Conference" -> "ICLR.cc_2024_Conference".
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).strip("._")
    if not cleaned:
        raise ValueError(f"cannot make a file name from {text!r}")
    return cleaned


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, value: Any) -> Path:
    return write_text_atomic(path, json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True))


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class RateLimiter:
    """At most one call per `min_interval_s` seconds (OpenReview and arXiv ask clients to pace themselves).

    `clock` and `sleep` are injectable so tests run instantly.
    """

    def __init__(self, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
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
