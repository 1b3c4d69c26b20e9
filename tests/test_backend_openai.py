"""The OpenAI-compatible backend against a stub server (fast, no model): requests, retries, bounded waits, what
the server reports (models, context), hints, usage, and choice scoring from top_logprobs."""

from __future__ import annotations

import logging
import math
import time

import pytest
from openai_stub import Stub

from cycleresearcher.backends import BackendError, BackendSpecError, get_backend
from cycleresearcher.schema import GenerationRequest


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                "OPENAI_API_KEY", "CYCLERESEARCHER_API_KEY", "OPENAI_BASE_URL", "CYCLERESEARCHER_DEBUG",
                "CYCLERESEARCHER_TIMEOUT", "CYCLERESEARCHER_RETRIES"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def stubs():
    made = []

    def make(**kwargs) -> Stub:
        made.append(Stub(**kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.fixture
def stub(stubs):
    return stubs()


def openai_backend(stub, model, query="", **attrs):
    backend = get_backend(f"openai:{model}@{stub.url}{query}", fresh=True)
    backend.backoff_s = 0.01
    backend.max_backoff_s = 0.05
    for k, v in attrs.items():
        setattr(backend, k, v)
    return backend


# ---- requests, retries, errors -----------------------------------------------------------------------------

def test_basic_request_and_usage(stub):
    b = openai_backend(stub, "ok")
    out = b.generate([GenerationRequest(messages=user("hi"), temperature=0.4, top_p=0.9, max_new_tokens=50, seed=3,
                                        stop=["\n\n"], stage="review")])
    assert out[0][0].text == "hi #0 seed=3"
    sent = stub.calls[0]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"], sent["stop"]) == (
        0.4, 0.9, 50, 3, ["\n\n"])
    assert b.usage.to_dict()["review"] == {"calls": 1, "prompt_tokens": 7, "completion_tokens": 3,
                                           "seconds": b.usage.to_dict()["review"]["seconds"]}


def test_n_samples_and_short_servers_count_every_call(stub):
    b = openai_backend(stub, "ok")
    out = b.generate([GenerationRequest(messages=user("q"), n=3, seed=10)])[0]
    assert [c.text for c in out] == ["q #0 seed=10", "q #1 seed=10", "q #2 seed=10"]
    assert len(stub.calls) == 1 and stub.calls[0]["n"] == 3
    assert sum(c.completion_tokens for c in out) == 9 and sum(c.prompt_tokens for c in out) == 7

    single = openai_backend(stub, "single")  # a server that ignores n (llama.cpp): one call per sample
    out = single.generate([GenerationRequest(messages=user("q"), n=3, seed=10, stage="research")])[0]
    assert len(out) == 3
    assert [c["n"] for c in stub.calls[1:]] == [3, 2, 1]
    assert [c.text for c in out] == ["q #0 seed=10", "q #0 seed=11", "q #0 seed=12"]  # seeds shifted
    usage = single.usage.to_dict()["research"]
    assert usage["calls"] == 3  # three HTTP calls, three calls counted
    assert usage["prompt_tokens"] == 3 * 7 and usage["completion_tokens"] == 3 * 3  # each call billed


def test_retries_429_then_succeeds(stub):
    b = openai_backend(stub, "flaky", max_tries=4)
    assert b.generate([GenerationRequest(messages=user("hi"))])[0][0].text == "hi #0 seed=None"
    assert len(stub.calls) == 3  # 429, 429, 200


def test_server_error_raises_after_tries(stub):
    b = openai_backend(stub, "broken", "?retries=2")
    assert b.max_tries == 3
    with pytest.raises(BackendError, match="HTTP 500 after 3 tries: the GPU caught fire"):
        b.generate([GenerationRequest(messages=user("hi"), stage="review")])
    assert len(stub.calls) == 3
    assert b.usage.to_dict() == {}  # nothing recorded, nothing to score


def test_client_error_not_retried(stub):
    b = openai_backend(stub, "bad", max_tries=5)
    with pytest.raises(BackendError, match="HTTP 400: max_tokens is too large"):
        b.generate([GenerationRequest(messages=user("hi"))])
    assert len(stub.calls) == 1


def test_concurrency_limit(stub, monkeypatch):
    b = openai_backend(stub, "slow", "?concurrency=3")
    requests = [GenerationRequest(messages=user(f"p{i}")) for i in range(9)]
    out = b.generate(requests)
    assert [r[0].text for r in out] == [f"p{i} #0 seed=None" for i in range(9)]  # order kept
    assert stub.peak == 3

    stub.peak = 0
    monkeypatch.setenv("CYCLERESEARCHER_DEBUG", "1")
    b.generate(requests[:4])
    assert stub.peak == 1


def test_key_lookup(stub, monkeypatch):
    from cycleresearcher.backends.openai_spec import OFFICIAL_BASE_URL, api_key_for

    assert api_key_for(stub.url) == "EMPTY"
    with pytest.raises(BackendError, match="OPENAI_API_KEY"):
        api_key_for(OFFICIAL_BASE_URL)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert api_key_for(OFFICIAL_BASE_URL) == "sk-test"


def test_dead_server_retried_then_clear_error(stub):
    url = stub.url
    stub.close()  # nothing listens there any more
    b = get_backend(f"openai:ok@{url}?retries=1", fresh=True)
    b.backoff_s = 0.01
    with pytest.raises(BackendError, match="connection failed after 2 tries") as info:
        b.generate([GenerationRequest(messages=user("hi"))])
    assert url in info.value.hint  # "is the server running at URL?"


def test_frozen_server_times_out_and_says_it_is_waiting(stub, caplog):
    b = openai_backend(stub, "frozen", "?timeout=0.6&retries=1", wait_log_every_s=0.2)
    start = time.monotonic()
    with caplog.at_level(logging.INFO, logger="cycleresearcher.backends.openai_server"):
        with pytest.raises(BackendError, match=r"no answer within 1 s, 2 tries") as info:
            b.generate([GenerationRequest(messages=user("hi"))])
    elapsed = time.monotonic() - start
    assert 1.2 <= elapsed < 5  # two tries of 0.6 s and a short back-off, not minutes
    assert "timeout" in info.value.hint
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert waits and f"openai:frozen@{stub.url}" in waits[0] and "timeout 1 s" in waits[0]


def test_timeout_and_retries_from_environment(stub, monkeypatch):
    monkeypatch.setenv("CYCLERESEARCHER_TIMEOUT", "7.5")
    monkeypatch.setenv("CYCLERESEARCHER_RETRIES", "0")
    b = get_backend(f"openai:ok@{stub.url}", fresh=True)
    assert (b.timeout_s, b.max_tries) == (7.5, 1)
    b = get_backend(f"openai:ok@{stub.url}?timeout=3&retries=4", fresh=True)  # the spec wins
    assert (b.timeout_s, b.max_tries) == (3.0, 5)
    monkeypatch.setenv("CYCLERESEARCHER_TIMEOUT", "soon")
    with pytest.raises(BackendSpecError, match="CYCLERESEARCHER_TIMEOUT"):
        get_backend(f"openai:ok@{stub.url}", fresh=True)


def test_defaults_are_bounded(stub):
    from cycleresearcher.backends.openai import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S

    b = get_backend(f"openai:ok@{stub.url}", fresh=True)
    assert b.timeout_s == DEFAULT_TIMEOUT_S and b.max_tries == DEFAULT_RETRIES + 1
    assert b.timeout_s * b.max_tries <= 900  # was 600 s x 6 tries: an hour on a frozen server


def test_spec_parsing_and_options():
    from cycleresearcher.backends.openai import parse_openai_options, parse_openai_spec

    assert parse_openai_spec("gpt-4o-mini") == ("gpt-4o-mini", None)
    assert parse_openai_spec("Qwen/Qwen2.5-7B@http://localhost:8000/v1/") == ("Qwen/Qwen2.5-7B",
                                                                               "http://localhost:8000/v1")
    assert parse_openai_spec("a@b@https://h/v1") == ("a@b", "https://h/v1")
    with pytest.raises(BackendError, match="model name"):
        parse_openai_spec("@http://localhost:1/v1")
    assert parse_openai_options("ctx=4096&timeout=60&retries=0&logprobs=0") == {
        "ctx": 4096, "timeout": 60.0, "retries": 0, "logprobs": False}
    for bad in ("ctx=big", "ctx=0", "retries=-1", "tiemout=3", "logprobs=maybe"):
        with pytest.raises(BackendSpecError):
            parse_openai_options(bad)


# ---- what the server says: URL, model, context ---------------------------------------------------------------

def test_url_without_v1_gets_a_hint(stubs):
    s = stubs(models=[{"id": "m"}])
    b = get_backend(f"openai:m@{s.root}", fresh=True)  # the routes are under /v1
    with pytest.raises(BackendError, match=rf"did you mean {s.root}/v1\?"):
        b.generate([GenerationRequest(messages=user("hi"))])
    assert s.calls == []  # found out before any generation


def test_unknown_model_lists_the_served_ones(stubs, caplog):
    s = stubs(models=[{"id": "llama-3-8b"}, {"id": "qwen2.5-7b"}])
    b = openai_backend(s, "gpt-4o")
    with pytest.raises(BackendError, match="does not serve model 'gpt-4o'; it serves: llama-3-8b, qwen2.5-7b"):
        b.generate([GenerationRequest(messages=user("hi"))])
    assert s.calls == []
    one = stubs(models=[{"id": "/models/SmolLM2.gguf"}])  # llama.cpp: one model, answers any name
    b = openai_backend(one, "ok")
    assert b.generate([GenerationRequest(messages=user("hi"))])[0][0].text == "hi #0 seed=None"
    assert "lists only /models/SmolLM2.gguf" in caplog.text
    tagged = stubs(models=[{"id": "ok:latest"}, {"id": "other"}])  # Ollama's implicit tag
    assert openai_backend(tagged, "ok").generate([GenerationRequest(messages=user("x"))])[0][0].text
    assert sum(g.endswith("/models") for g in tagged.gets) == 1  # asked once, not per request


def test_context_from_models_props_and_spec(stubs):
    vllm = stubs(models=[{"id": "ok", "max_model_len": 4096}])
    assert openai_backend(vllm, "ok").context_length == 4096
    assert openai_backend(vllm, "ok", "?ctx=2048").context_length == 2048  # the spec wins
    llamacpp = stubs(models=[{"id": "ok", "meta": {"n_ctx_train": 8192}}],
                     props={"default_generation_settings": {"n_ctx": 3072}})
    assert openai_backend(llamacpp, "ok").context_length == 8192  # /models answers first ...
    props_only = stubs(models=[{"id": "ok"}], props={"default_generation_settings": {"n_ctx": 3072}})
    assert openai_backend(props_only, "ok").context_length == 3072  # ... /props when it does not
    router = stubs(models=[{"id": "a", "context_length": 32768}, {"id": "ok", "context_window": 131072}])
    assert openai_backend(router, "ok").context_length == 131072


def test_unknown_context_is_assumed_then_learned_from_an_error(stubs, caplog):
    s = stubs(models=[{"id": "ctx"}])
    s.ctx_limit = 100
    b = openai_backend(s, "ctx")
    assert b.context_length == 8192 and "pass ?ctx=N" in caplog.text
    # the prompt fits but prompt + max_tokens does not: max_tokens is cut to fit and the call repeated
    out = b.generate([GenerationRequest(messages=user("one two three four five"), max_new_tokens=500)])
    assert out[0][0].text.startswith("one two")
    assert [c["max_tokens"] for c in s.calls] == [500, 94]
    assert b.context_length == 100  # learned
    # a prompt longer than the context is the caller's to shorten: a typed error with the numbers
    from cycleresearcher.backends.openai import ContextLengthExceeded

    with pytest.raises(ContextLengthExceeded, match="maximum context length is 100 tokens") as info:
        b.generate([GenerationRequest(messages=user("word " * 150), max_new_tokens=10)])
    assert (info.value.context_length, info.value.prompt_tokens) == (100, 150)


def test_token_counts_from_the_server_or_a_cautious_estimate(stubs):
    s = stubs(models=[{"id": "ok"}], tokenize=True)
    assert openai_backend(s, "ok").count_tokens("a b c d") == 4
    plain = stubs(models=[{"id": "ok"}])
    text = "x" * 300
    assert openai_backend(plain, "ok").count_tokens(text) == 100  # 3 characters a token, rounded up


# ---- choice scoring from top_logprobs ---------------------------------------------------------------------

def test_choice_scoring_from_top_logprobs(stubs):
    s = stubs(models=[{"id": "lp"}])
    # the greedy reply is "1" then "0" ("10"); "3" is the runner-up at the first token
    s.logprob_script = [("1", math.log(0.6), [("1", math.log(0.6)), ("3", math.log(0.3)), ("Rating", -5.0)]),
                        ("0", math.log(0.8), [("0", math.log(0.8)), ("\n", math.log(0.15))])]
    b = openai_backend(s, "lp")
    assert b.supports_choice_scoring is True
    rows = b.choice_logprobs([user("rate it"), user("and this")], ["1", "3", "5", "10"])
    assert len(rows) == 2
    one, three, five, ten = rows[0]
    assert ten == pytest.approx(math.log(0.6 * 0.8))
    assert one == pytest.approx(math.log(0.6 * 0.2))  # "1" and stop: 1 - P("0")
    assert three == pytest.approx(math.log(0.3))
    assert five < -5.0  # not shown: below the smallest shown log-probability
    assert max(range(4), key=lambda k: rows[0][k]) == 3  # "10" chosen
    sent = s.calls[-1]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 20 and sent["temperature"] == 0.0
    assert b.usage.to_dict()["choice"]["calls"] == 3  # the probe and two conversations


def test_servers_without_logprobs_do_not_score(stubs):
    s = stubs(models=[{"id": "ok"}, {"id": "lp400"}])
    quiet = openai_backend(s, "ok")  # answers, but with no logprobs in the reply
    assert quiet.supports_choice_scoring is False
    with pytest.raises(BackendError, match="cannot score choices"):
        quiet.choice_logprobs([user("rate")], ["1", "2"])
    assert openai_backend(s, "lp400").supports_choice_scoring is False  # refuses the fields
    forced = openai_backend(s, "ok", "?logprobs=0")
    assert forced.supports_choice_scoring is False
    calls = len(s.calls)
    assert openai_backend(s, "ok", "?logprobs=1").supports_choice_scoring is True
    assert len(s.calls) == calls  # the spec said so: no probe
