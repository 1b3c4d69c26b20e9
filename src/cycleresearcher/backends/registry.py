"""Spec string -> backend: the built-in backends, and plugins from the `cycleresearcher.backends` entry points.

    get_backend("local")                                   # the embedded SmolLM2-135M
    get_backend("hf:/models/my-checkpoint?dtype=bfloat16")  # a Hugging Face folder or .gguf file
    get_backend("openai:Qwen/Qwen2.5-7B@http://localhost:8000/v1?ctx=32768")
    get_backend("vllm:/models/CycleReviewer-70B?tp=4")
    get_backend("fake")                                    # scripted replies, for tests

A spec is `PREFIX[:REST]`; the prefix picks a factory, which is called with REST and returns a `Backend`.
Built-ins are known by module name (`BUILTINS`, as simonw/llm lists its default plugins), so importing this
module imports no model library; a backend's module is imported when a spec first names it.

Writing a backend plugin (in its own package):

    # mypkg/echo.py
    from cycleresearcher.backends import Backend
    from cycleresearcher.schema import Completion

    class EchoBackend(Backend):
        def _execute(self, requests, progress=False):
            return [[Completion(text=r.messages[-1]["content"]) for _ in range(r.n)] for r in requests]

    def make_echo_backend(rest: str) -> Backend:  # `rest` is what follows "echo:" in the spec
        return EchoBackend()

    # the plugin's pyproject.toml
    [project.entry-points."cycleresearcher.backends"]
    echo = "mypkg.echo:make_echo_backend"

After `pip install` of that package, `--backend echo` works everywhere a spec is accepted. The entry point's
name is the spec prefix. A plugin cannot replace a built-in prefix (it is skipped with a warning); in-process
code can, with `register_backend(prefix, factory)`.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
from importlib import metadata
from typing import Callable, Optional

from ..io import peak_rss_mb
from .base import Backend, BackendError, BackendSpecError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cycleresearcher.backends"
BackendFactory = Callable[[str], Backend]  # receives the part of the spec after "prefix:"

# prefix -> "module:factory"; imported only when a spec uses the prefix
BUILTINS: dict[str, str] = {
    "fake": "cycleresearcher.backends.fake:make_fake_backend",
    "local": "cycleresearcher.backends.local:make_local_backend",
    "hf": "cycleresearcher.backends.local:make_hf_backend",
    "openai": "cycleresearcher.backends.openai:make_openai_backend",
    "vllm": "cycleresearcher.backends.vllm:make_vllm_backend",
}
SPEC_HELP = "local, hf:PATH, openai:MODEL@BASE_URL, vllm:PATH, fake"

_REGISTERED: dict[str, BackendFactory] = {}
_PLUGINS: Optional[dict[str, metadata.EntryPoint]] = None
_CACHE: dict[str, Backend] = {}
_LOCK = threading.RLock()


def register_backend(prefix: str, factory: BackendFactory) -> None:
    """Make `prefix:REST` specs call `factory(REST)` in this process (overrides built-ins and plugins)."""
    if not prefix or ":" in prefix or "?" in prefix:
        raise ValueError(f"a backend prefix is a non-empty name without ':' or '?', got {prefix!r}")
    with _LOCK:
        _REGISTERED[prefix] = factory


def plugins() -> dict[str, metadata.EntryPoint]:
    """Backends installed by other packages (the `cycleresearcher.backends` entry-point group), read once."""
    global _PLUGINS
    with _LOCK:
        if _PLUGINS is None:
            found: dict[str, metadata.EntryPoint] = {}
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in BUILTINS:
                    log.warning("ignoring backend plugin %r (%s): it would replace a built-in", ep.name, ep.value)
                elif ep.name in found:
                    log.warning("backend plugin %r is installed twice (%s, %s); using the first",
                                ep.name, found[ep.name].value, ep.value)
                else:
                    found[ep.name] = ep
            _PLUGINS = found
        return _PLUGINS


def available_backends() -> dict[str, str]:
    """Every usable spec prefix and where it comes from: "built-in", "registered" or "plugin MODULE:OBJECT"."""
    out = {prefix: "built-in" for prefix in BUILTINS}
    out.update({name: f"plugin {ep.value}" for name, ep in plugins().items()})
    out.update({prefix: "registered" for prefix in _REGISTERED})
    return out


def split_spec(spec: str) -> tuple[str, str]:
    """`openai:m@http://h/v1` -> ("openai", "m@http://h/v1"); `local?dtype=bfloat16` -> ("local", "?dtype=...")."""
    spec = spec.strip()
    prefix, _, rest = spec.partition(":")
    if "?" in prefix:  # options without a path, e.g. local?dtype=bfloat16
        prefix, _, query = prefix.partition("?")
        rest = "?" + query
    return prefix, rest


def _factory(prefix: str, spec: str) -> BackendFactory:
    if prefix in _REGISTERED:
        return _REGISTERED[prefix]
    if prefix in BUILTINS:
        module, _, name = BUILTINS[prefix].partition(":")
        return getattr(importlib.import_module(module), name)
    ep = plugins().get(prefix)
    if ep is None:
        known = ", ".join(sorted(set(plugins()) | set(_REGISTERED)))
        raise BackendSpecError(f"unknown backend spec {spec!r}; use one of: {SPEC_HELP}"
                               + (f", or the installed {known}" if known else ""))
    try:
        return ep.load()
    except Exception as exc:  # a broken third-party package: name it instead of showing its traceback
        raise BackendError(f"backend plugin {prefix!r} ({ep.value}) failed to load: "
                           f"{type(exc).__name__}: {exc}") from exc


def get_backend(spec: str, fresh: bool = False) -> Backend:
    """Backend for a spec string, built once per process and cached (models are expensive to load).

    `fresh=True` builds a new backend that is not cached (its own usage counters and budget).
    """
    spec = spec.strip()
    prefix, rest = split_spec(spec)
    if not prefix:
        raise BackendSpecError(f"unknown backend spec {spec!r}; use one of: {SPEC_HELP}")
    factory = _factory(prefix, spec)
    if fresh:
        return _build(factory, spec, rest)
    with _LOCK:
        if spec not in _CACHE:
            _CACHE[spec] = _build(factory, spec, rest)
        return _CACHE[spec]


def _build(factory: BackendFactory, spec: str, rest: str) -> Backend:
    backend = factory(rest)
    if not isinstance(backend, Backend):
        raise BackendError(f"the factory for {spec!r} returned {type(backend).__name__}, not a Backend")
    backend.spec = backend.spec or spec
    return backend


def release_backends(prefix: str = "") -> None:
    """Drop cached backends whose spec starts with `prefix` (all when empty), so their models can be freed."""
    with _LOCK:
        for spec in [s for s in _CACHE if s.startswith(prefix)]:
            del _CACHE[spec]


def release_models(prefix: str = "") -> None:
    """Free loaded models: drop cached backends (those whose spec starts with `prefix`; all when empty),
    clear the causal-LM loader's cache, collect garbage and give freed heap pages back to the OS.

    Models still held by a kept backend or by the caller stay alive. Between the stages of a training round
    this keeps one copy of the policy in memory at a time, so one stage's peak does not stack on the last.
    """
    release_backends(prefix)
    from .loader import load_causal_lm  # stdlib-only at import time; torch loads inside the function

    load_causal_lm.cache_clear()
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    log.info("models released; peak RSS so far %.0f MB", peak_rss_mb())
