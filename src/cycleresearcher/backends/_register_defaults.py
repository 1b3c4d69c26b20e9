"""Registers the built-in backends. Heavy imports (torch, openai, vllm) happen only when a backend is built."""

from .base import register_backend


def _fake(rest: str):
    from .fake import FakeBackend
    return FakeBackend()


def _local(rest: str):
    from .local import make_local_backend
    return make_local_backend(rest)


def _hf(rest: str):
    from .local import make_hf_backend
    return make_hf_backend(rest)


def _openai(rest: str):
    from .openai import make_openai_backend
    return make_openai_backend(rest)


def _vllm(rest: str):
    from .vllm import make_vllm_backend
    return make_vllm_backend(rest)


register_backend("fake", _fake)
register_backend("local", _local)
register_backend("hf", _hf)
register_backend("openai", _openai)
register_backend("vllm", _vllm)
