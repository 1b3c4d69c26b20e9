"""The one interface every model backend implements: requests in, completions out, with accounting and budgets.

A backend takes many `GenerationRequest`s at once and returns, for each, its `n` `Completion`s. Subclasses
implement only `_execute` (and `_choice_logprobs` when they can score choices); this base class validates
requests, records tokens and seconds per stage, and enforces a budget. What a backend can do is declared in
class flags (`supports_choice_scoring`, `context_length`, `can_batch`, `supports_seed`, `default_review_mode`),
so callers check a flag instead of probing for methods or reading the spec string.

This module knows no implementation: specs are turned into backends by `registry.py`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Optional

from ..errors import InputError, StepError
from ..schema import Completion, GenerationRequest, Message


class BackendError(StepError):
    """A backend could not produce completions (missing model, server error after retries)."""


class BackendSpecError(BackendError, InputError):
    """A backend spec string cannot be used: unknown prefix, unknown option, missing model name."""


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
    """Tokens, seconds and model calls spent, per stage label (research, review, choice, ...)."""

    stages: dict[str, StageUsage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, stage: str, prompt_tokens: int, completion_tokens: int, seconds: float, calls: int = 1) -> None:
        with self._lock:
            s = self.stages.setdefault(stage or "other", StageUsage())
            s.calls += calls
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
    """A chat model. Subclasses implement `_execute`; callers use `generate`, `chat` and `choice_logprobs`."""

    spec: str = ""
    # ---- capabilities (class flags; a backend may set them per instance once it knows its model) ----
    context_length: int = 8192  # tokens the model attends to, prompt + completion
    can_batch: bool = True  # several requests are served together (one forward pass or concurrent calls)
    supports_seed: bool = True  # the same seed gives the same text
    supports_choice_scoring: bool = False  # choice_logprobs works (likelihood of each allowed answer)
    # How a reviewer should use this model when asked for "auto": "set" (the whole committee in one
    # completion, the CycleReviewer format) or "per-review" (one review per completion; small models).
    default_review_mode: str = "set"

    def __init__(self) -> None:
        self.usage = Usage()
        self.budget: Optional[Budget] = None

    @abstractmethod
    def _execute(self, requests: list[GenerationRequest], progress: bool = False) -> list[list[Completion]]:
        """Return, for each request, exactly `request.n` completions."""

    def _choice_logprobs(self, conversations: list[list[Message]], choices: list[str]) -> list[list[float]]:
        """Backends with `supports_choice_scoring` override this; see `choice_logprobs`."""
        raise NotImplementedError

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

    def choice_logprobs(self, conversations: list[list[Message]], choices: list[str]) -> list[list[float]]:
        """For each conversation, the log-probability of each choice as the model's whole reply.

        Returns one row per conversation, one float (<= 0) per choice, in the order given; compare values
        within a row (the allowed value of highest log-probability is the model's choice). Token use is
        recorded under the stage "choice". Raises BackendError when `supports_choice_scoring` is False:
        check the flag first and fall back to asking for the answer in text.
        """
        if not self.supports_choice_scoring:
            raise BackendError(f"{self.spec}: this backend cannot score choices by likelihood "
                               "(supports_choice_scoring is False); ask for the answer in text instead")
        if not choices or len(set(choices)) != len(choices) or not all(isinstance(c, str) and c for c in choices):
            raise ValueError(f"choices must be distinct non-empty strings, got {choices!r}")
        for messages in conversations:
            _validate(GenerationRequest(messages=messages))
        if not conversations:
            return []
        if self.budget is not None:
            self.budget.check(self.usage)
        rows = self._choice_logprobs(conversations, choices)
        if len(rows) != len(conversations) or any(len(r) != len(choices) for r in rows):
            raise BackendError(f"{self.spec}: choice scores have the wrong shape")
        return rows


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
