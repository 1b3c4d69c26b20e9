"""A scripted backend for tests and dry runs: replies come from a queue (or a function), never a model."""

from __future__ import annotations

from typing import Callable, Optional

from ..schema import Completion, GenerationRequest
from .base import Backend, BackendError


class FakeBackend(Backend):
    """`enqueue` texts to be returned in order; `history` holds every request seen.

    With `responder`, replies are computed from the request instead (used once the queue is empty).
    """

    def __init__(self, responder: Optional[Callable[[GenerationRequest, int], str]] = None,
                 context_length: int = 8192, choice_scores: Optional[Callable[[list, list], list[float]]] = None
                 ) -> None:
        super().__init__()
        self.spec = "fake"
        self.queue: list[str] = []
        self.history: list[GenerationRequest] = []
        self.responder = responder
        self.context_length = context_length
        # With `choice_scores(messages, choices) -> one log-probability per choice`, the fake scores choices.
        self.choice_scores = choice_scores
        self.supports_choice_scoring = choice_scores is not None

    def enqueue(self, *texts: str) -> "FakeBackend":
        self.queue.extend(texts)
        return self

    def _execute(self, requests, progress=False):
        out = []
        for request in requests:
            self.history.append(request)
            completions = []
            for i in range(request.n):
                if self.queue:
                    text = self.queue.pop(0)
                elif self.responder is not None:
                    text = self.responder(request, i)
                else:
                    raise BackendError("FakeBackend: queue is empty and no responder is set")
                words = len(text.split())
                truncated = words > request.max_new_tokens
                if truncated:
                    text = " ".join(text.split()[: request.max_new_tokens])
                completions.append(Completion(
                    text=text, finish_reason="length" if truncated else "stop",
                    prompt_tokens=sum(self.count_tokens(m["content"]) for m in request.messages),
                    completion_tokens=min(words, request.max_new_tokens), model="fake"))
            out.append(completions)
        return out

    def _choice_logprobs(self, conversations, choices):
        rows = [list(self.choice_scores(messages, choices)) for messages in conversations]
        self.usage.add("choice", sum(self.count_tokens(m["content"]) for c in conversations for m in c), 0, 0.0,
                       calls=len(conversations))
        return rows


def make_fake_backend(rest: str) -> FakeBackend:
    """Factory for the spec registry: `fake` (an empty queue; tests enqueue replies or pass a responder)."""
    return FakeBackend()
