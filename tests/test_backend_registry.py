"""The backend registry: built-ins by module name, plugins from entry points, the cache, release, errors."""

from __future__ import annotations

import sys

import pytest

from cycleresearcher.backends import (Backend, BackendError, BackendSpecError, get_backend, register_backend,
                                      release_backends, release_models)
from cycleresearcher.backends import registry
from cycleresearcher.errors import CycleResearcherError, InputError, StepError
from cycleresearcher.schema import GenerationRequest

PLUGIN = '''
from cycleresearcher.backends import Backend
from cycleresearcher.schema import Completion


class EchoBackend(Backend):
    def __init__(self, rest):
        super().__init__()
        self.rest = rest

    def _execute(self, requests, progress=False):
        return [[Completion(text=self.rest + ":" + r.messages[-1]["content"]) for _ in range(r.n)] for r in requests]


def make_echo(rest):
    return EchoBackend(rest)


def make_broken(rest):
    raise AssertionError("never called")
'''


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """An installed distribution (a .dist-info folder on sys.path) declaring three backend entry points."""
    (tmp_path / "echo_plugin.py").write_text(PLUGIN)
    info = tmp_path / "echo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[cycleresearcher.backends]\necho = echo_plugin:make_echo\nmissing = no_such_module:make\n"
        "local = echo_plugin:make_echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_PLUGINS", None)
    yield
    registry._PLUGINS = None
    sys.modules.pop("echo_plugin", None)


def test_plugin_from_entry_point(plugin_dist, caplog):
    backend = get_backend("echo:hello", fresh=True)
    assert type(backend).__name__ == "EchoBackend" and backend.spec == "echo:hello"
    assert backend.chat([{"role": "user", "content": "hi"}]).text == "hello:hi"
    available = registry.available_backends()
    assert available["echo"] == "plugin echo_plugin:make_echo"
    assert available["local"] == "built-in"  # a plugin cannot take a built-in's name ...
    assert "would replace a built-in" in caplog.text  # ... and says so


def test_broken_plugin_is_named(plugin_dist):
    with pytest.raises(BackendError, match=r"backend plugin 'missing' \(no_such_module:make\) failed to load"):
        get_backend("missing:x", fresh=True)


def test_unknown_prefix_lists_choices(plugin_dist):
    with pytest.raises(BackendSpecError, match="unknown backend spec 'nope:x'.*installed echo"):
        get_backend("nope:x")


def test_builtin_modules_are_imported_only_when_used():
    # the registry names built-ins by module; each name must resolve to a factory
    for prefix, target in registry.BUILTINS.items():
        module, _, name = target.partition(":")
        assert module.startswith("cycleresearcher.backends."), prefix
        __import__(module)
        assert callable(getattr(sys.modules[module], name)), target


def test_register_release_and_cache():
    made = []

    class Tiny(Backend):
        def _execute(self, requests, progress=False):
            return [[] for _ in requests]

    def factory(rest):
        made.append(rest)
        return Tiny()

    register_backend("tinyreg", factory)
    try:
        a = get_backend("tinyreg:one")
        assert get_backend("tinyreg:one") is a and made == ["one"]
        assert get_backend("tinyreg:one", fresh=True) is not a
        release_backends("tinyreg:")
        b = get_backend("tinyreg:one")
        assert b is not a and made == ["one", "one", "one"]
        release_models()  # drops every cached backend and the loader cache, without error
        assert get_backend("tinyreg:one") is not b
    finally:
        registry._REGISTERED.pop("tinyreg", None)
        release_backends("tinyreg:")
    with pytest.raises(ValueError):
        register_backend("a:b", factory)


def test_factory_must_return_a_backend():
    register_backend("notabackend", lambda rest: object())
    try:
        with pytest.raises(BackendError, match="not a Backend"):
            get_backend("notabackend", fresh=True)
    finally:
        registry._REGISTERED.pop("notabackend", None)


def test_error_hierarchy():
    assert issubclass(BackendError, CycleResearcherError) and issubclass(BackendError, RuntimeError)
    assert issubclass(BackendError, StepError)
    assert issubclass(BackendSpecError, InputError) and issubclass(BackendSpecError, BackendError)
    from cycleresearcher.backends.loader import ModelLoadError

    assert issubclass(ModelLoadError, StepError)
    with pytest.raises(ModelLoadError, match="does not exist"):
        get_backend("hf:/no/such/model", fresh=True)


def test_base_has_no_implementation_imports():
    import ast
    from pathlib import Path

    import cycleresearcher.backends.base as base

    tree = ast.parse(Path(base.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"local", "openai", "vllm", "fake", "registry", "loader"}


def test_choice_logprobs_needs_the_capability():
    from cycleresearcher.backends.fake import FakeBackend

    plain = FakeBackend()
    assert plain.supports_choice_scoring is False
    with pytest.raises(BackendError, match="cannot score choices"):
        plain.choice_logprobs([[{"role": "user", "content": "rate"}]], ["1", "2"])
    scoring = FakeBackend(choice_scores=lambda messages, choices: [-float(c) for c in choices])
    assert scoring.supports_choice_scoring is True
    assert scoring.choice_logprobs([[{"role": "user", "content": "rate"}]] * 2, ["1", "3"]) == [[-1.0, -3.0]] * 2
    assert scoring.usage.to_dict()["choice"]["calls"] == 2
    with pytest.raises(ValueError, match="distinct"):
        scoring.choice_logprobs([[{"role": "user", "content": "rate"}]], ["1", "1"])
    assert plain.default_review_mode == "set" and plain.can_batch and plain.context_length > 0
    assert GenerationRequest(messages=[{"role": "user", "content": "x"}]).n == 1
