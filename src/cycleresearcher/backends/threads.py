"""How many CPU threads torch should use here: the user's choice, or one thread when the machine is oversubscribed."""

from __future__ import annotations

import os
from typing import Optional

from .base import BackendError


def default_threads() -> int:
    """CPU threads for torch: CYCLERESEARCHER_THREADS, else 1 on an oversubscribed machine, else every core.

    On a machine shared with other busy processes, torch's OpenMP threads spin and wait on each other (on a
    2-core machine at load 8 we measured 0.4 tokens/s with 2 threads against 4-5.6 with 1; a llama.cpp server
    showed 1 tok/s with 2 threads and 23-38 with 1). So when the 1-minute load average is above the number of
    cores we may use, other work is competing for them and one thread is faster. Our own earlier work counts
    in the load too, but it alone cannot push the load above the core count, since we use at most that many.
    """
    env = os.environ.get("CYCLERESEARCHER_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError as exc:
            raise BackendError(f"CYCLERESEARCHER_THREADS must be an integer, got {env!r}") from exc
    threads, _ = _threads_for_load(_cores(), _load())
    return threads


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _load() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this system
        return None


def _threads_for_load(cores: int, load: Optional[float]) -> tuple[int, str]:
    """(threads, why): 1 when the load average is above the core count, else every core."""
    if load is not None and load > cores:
        return 1, f"load {load:.1f} on {cores} cores: oversubscribed, so 1 thread"
    return cores, f"{cores} cores" + (f", load {load:.1f}" if load is not None else "")


def thread_reason(num_threads: Optional[int]) -> str:
    if num_threads:
        return "from the spec"
    if os.environ.get("CYCLERESEARCHER_THREADS"):
        return "from CYCLERESEARCHER_THREADS"
    return _threads_for_load(_cores(), _load())[1] + "; set CYCLERESEARCHER_THREADS to choose"
