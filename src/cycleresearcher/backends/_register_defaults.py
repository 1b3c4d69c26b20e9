"""Registers the built-in backends. Heavy imports (torch, openai, vllm) happen only when a backend is built."""

from .base import register_backend


def _fake(rest: str):
    from .fake import FakeBackend
    return FakeBackend()


register_backend("fake", _fake)
