"""The one interface every model backend implements, plus accounting, budgets and the spec registry.

A backend takes many `GenerationRequest`s at once and returns, for each, its `n` `Completion`s. Subclasses
implement only `_execute`; this base class validates requests, records tokens and seconds per stage, and
enforces a budget. Specs pick a backend: `local`, `hf:PATH`, `openai:MODEL@BASE_URL`, `vllm:PATH`, `fake`.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..schema import Completion, GenerationRequest, Message

log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """A backend could not produce completions (bad spec, missing model, server error after retries)."""


class BudgetExceeded(BackendError):
    """The run's token or time budget is spent; work done so far is kept by the caller."""


@dataclass
class StageUsage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Usage:
    """Tokens and seconds spent, per stage label (research, review, ...)."""

    stages: dict[str, StageUsage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, stage: str, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        with self._lock:
            s = self.stages.setdefault(stage or "other", StageUsage())
            s.calls += 1
            s.prompt_tokens += prompt_tokens
            s.completion_tokens += completion_tokens
            s.seconds += seconds

    @property
    def total_tokens(self) -> int:
        return sum(s.tokens for s in self.stages.values())

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.stages.values())

    def to_dict(self) -> dict:
        return {
            name: {"calls": s.calls, "prompt_tokens": s.prompt_tokens,
                   "completion_tokens": s.completion_tokens, "seconds": round(s.seconds, 3)}
            for name, s in sorted(self.stages.items())
        }


@dataclass
class Budget:
    """Limits for a whole run. None means unlimited."""

    max_tokens: Optional[int] = None  # prompt + completion tokens, all stages
    max_seconds: Optional[float] = None  # wall-clock seconds since the budget was created
    started: float = field(default_factory=time.monotonic)

    def check(self, usage: Usage) -> None:
        if self.max_tokens is not None and usage.total_tokens >= self.max_tokens:
            raise BudgetExceeded(
                f"token budget spent: {usage.total_tokens} of {self.max_tokens} tokens used; "
                "finished work is saved, raise --max-tokens to go on")
        if self.max_seconds is not None and time.monotonic() - self.started >= self.max_seconds:
            raise BudgetExceeded(
                f"time budget spent: {time.monotonic() - self.started:.0f} s of {self.max_seconds:.0f} s; "
                "finished work is saved, raise --max-seconds to go on")


class Backend(ABC):
    """A chat model. Subclasses implement `_execute`; callers use `generate` or `chat`."""

    spec: str = ""
    context_length: int = 8192  # tokens the model can attend to (prompt + completion)
    can_batch: bool = True  # several requests in one forward pass
    supports_seed: bool = True  # same seed, same output

    def __init__(self) -> None:
        self.usage = Usage()
        self.budget: Optional[Budget] = None

    @abstractmethod
    def _execute(self, requests: list[GenerationRequest], progress: bool = False) -> list[list[Completion]]:
        """Return, for each request, exactly `request.n` completions."""

    def count_tokens(self, text: str) -> int:
        """Token count of `text`; backends with a tokenizer override this rough estimate."""
        return max(1, len(text) // 4) if text else 0

    def generate(self, requests: list[GenerationRequest], progress: bool = False) -> list[list[Completion]]:
        for r in requests:
            _validate(r)
        if self.budget is not None:
            self.budget.check(self.usage)
        start = time.monotonic()
        results = self._execute(requests, progress=progress)
        if len(results) != len(requests):
            raise BackendError(f"{self.spec}: {len(results)} results for {len(requests)} requests")
        elapsed = time.monotonic() - start
        for request, completions in zip(requests, results):
            for c in completions:
                c.model = c.model or self.spec
            self.usage.add(
                request.stage,
                sum(c.prompt_tokens for c in completions),
                sum(c.completion_tokens for c in completions),
                elapsed * (len(completions) / max(1, sum(r.n for r in requests))),
            )
        return results

    def chat(self, messages: list[Message], **options) -> Completion:
        """One completion for one conversation; options are GenerationRequest fields."""
        return self.generate([GenerationRequest(messages=messages, n=1, **options)])[0][0]


def _validate(r: GenerationRequest) -> None:
    if not r.messages:
        raise ValueError("a request needs at least one message")
    for m in r.messages:
        if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise ValueError(f"bad message {m!r}: needs role system/user/assistant and string content")
    if r.n < 1:
        raise ValueError(f"n must be >= 1, got {r.n}")
    if not 0.0 <= r.temperature <= 5.0:
        raise ValueError(f"temperature must be in [0, 5], got {r.temperature}")
    if not 0.0 < r.top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {r.top_p}")
    if r.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {r.max_new_tokens}")


# ---- registry -------------------------------------------------------------------------------------------

BackendFactory = Callable[[str], Backend]  # receives the part of the spec after "prefix:"
_FACTORIES: dict[str, BackendFactory] = {}
_CACHE: dict[str, Backend] = {}
_CACHE_LOCK = threading.Lock()


def register_backend(prefix: str, factory: BackendFactory) -> None:
    _FACTORIES[prefix] = factory


def get_backend(spec: str, fresh: bool = False) -> Backend:
    """Backend for a spec string, loaded once per process (models are expensive to load)."""
    from . import _register_defaults  # noqa: F401  (fills _FACTORIES with the built-in backends)

    spec = spec.strip()
    prefix, _, rest = spec.partition(":")
    if "?" in prefix:  # options without a path, e.g. local?dtype=bfloat16
        prefix, _, query = prefix.partition("?")
        rest = "?" + query
    if prefix not in _FACTORIES:
        raise BackendError(
            f"unknown backend spec {spec!r}; use one of: local, hf:PATH, openai:MODEL@BASE_URL, vllm:PATH, fake")
    if fresh:
        return _FACTORIES[prefix](rest)
    with _CACHE_LOCK:
        if spec not in _CACHE:
            backend = _FACTORIES[prefix](rest)
            backend.spec = backend.spec or spec
            _CACHE[spec] = backend
        return _CACHE[spec]


def release_backends(prefix: str) -> None:
    """Drop cached backends whose spec starts with `prefix`, so their models can be freed."""
    with _CACHE_LOCK:
        for spec in [s for s in _CACHE if s.startswith(prefix)]:
            del _CACHE[spec]
