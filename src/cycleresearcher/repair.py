"""Batched generation with bounded repair rounds, shared by the researcher and the reviewer.

Model output that lacks required parts is sent back once more (up to `max_repairs` times) with a message
naming what is missing; the best attempt is kept, and what is still missing stays in its problems. Requests
that need a repair are batched together, so a round of repairs costs one backend call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generic, Optional, TypeVar

from .backends.base import Backend
from .schema import Completion, GenerationRequest, Message

T = TypeVar("T")


@dataclass
class Attempt(Generic[T]):
    result: T
    messages: list[Message]  # exactly what was sent for this attempt
    text: str
    missing: list[str]
    completions: list[Completion] = field(default_factory=list)  # every completion spent on this item

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.completions)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.completions)


def generate_with_repairs(backend: Backend, conversations: list[list[Message]], parse: Callable[[str], T],
                          missing: Callable[[T], list[str]], repair_message: Callable[[list[str]], str],
                          max_repairs: int = 1, progress: bool = False,
                          **options) -> list[Attempt[T]]:
    """For each conversation, the best parsed attempt (fewest missing parts; the first on ties)."""
    best: list[Optional[Attempt[T]]] = [None] * len(conversations)
    spent: list[list[Completion]] = [[] for _ in conversations]
    pending = list(range(len(conversations)))
    current = {i: list(conversations[i]) for i in pending}
    for round_index in range(max_repairs + 1):
        if not pending:
            break
        requests = [GenerationRequest(messages=current[i], n=1, **options) for i in pending]
        results = backend.generate(requests, progress=progress)
        still = []
        for i, completions in zip(pending, results):
            completion = completions[0]
            spent[i].append(completion)
            parsed = parse(completion.text)
            gaps = missing(parsed)
            attempt = Attempt(parsed, list(current[i]), completion.text, gaps)
            if best[i] is None or len(gaps) < len(best[i].missing):
                best[i] = attempt
            if gaps and round_index < max_repairs:
                current[i] = conversations[i] + [{"role": "assistant", "content": completion.text},
                                                 {"role": "user", "content": repair_message(gaps)}]
                still.append(i)
        pending = still
    out = []
    for i, attempt in enumerate(best):
        assert attempt is not None
        attempt.completions = spent[i]
        out.append(attempt)
    return out
