"""Backends: the local transformers backend on a tiny model, the OpenAI backend on a stub server, the registry."""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cycleresearcher.backends import Budget, BudgetExceeded, get_backend
from cycleresearcher.backends.base import BackendError
from cycleresearcher.schema import GenerationRequest


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


PROMPTS = ["hello there", "We propose a new method for graph neural networks and evaluate it.", "x",
           "The results show that our approach improves accuracy by 3 points over the baseline."]


# ---- local backend --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lively_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with large random weights: its greedy text varies by prompt (std 0.02 repeats one token)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("lively")
    shutil.copytree(tiny_model_dir, path, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def local(lively_dir):
    return get_backend(f"hf:{lively_dir}", fresh=True)


@pytest.fixture(autouse=True)
def _fresh_usage(request):
    if "local" in request.fixturenames:
        backend = request.getfixturevalue("local")
        backend.usage.stages.clear()
        backend.budget = None


def test_batching_matches_one_by_one_greedy(local):
    requests = [GenerationRequest(messages=user(p), temperature=0, max_new_tokens=16) for p in PROMPTS]
    batched = [r[0].text for r in local.generate(requests)]
    single = [local.generate([r])[0][0].text for r in requests]
    assert batched == single
    assert len(set(batched)) == len(PROMPTS)  # the model really depends on the prompt
    # the plan really batched: one group (equal settings), sorted longest prompt first, one batch
    plan = local.plan_batches(local._rows(requests))
    assert len(plan) == 1 and [len(r.prompt_ids) for r in plan[0]] == sorted(
        (len(r.prompt_ids) for r in plan[0]), reverse=True)


def test_token_budget_splits_batches(local):
    requests = [GenerationRequest(messages=user(p), temperature=0, max_new_tokens=8) for p in PROMPTS]
    rows = local._rows(requests)
    widest = max(len(r.prompt_ids) for r in rows)
    old = local.max_batch_tokens
    try:
        local.max_batch_tokens = 2 * (widest + 8)  # two rows of the widest prompt fit, three do not
        plan = local.plan_batches(rows)
    finally:
        local.max_batch_tokens = old
    assert [len(b) for b in plan][0] == 2
    assert sum(len(b) for b in plan) == 4
    for b in plan:
        assert len(b) * (len(b[0].prompt_ids) + 8) <= 2 * (widest + 8) or len(b) == 1


def test_seed_reproducible_and_samples_differ(local):
    def run(seed):
        r = GenerationRequest(messages=user("hello there"), n=3, temperature=1.0, top_p=1.0, max_new_tokens=12,
                              seed=seed)
        return [c.text for c in local.generate([r])[0]]

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert len(first) == 3 and len(set(first)) > 1  # n samples, not one sample three times
    assert first != other


def test_stop_strings_truncate(local):
    free = local.generate([GenerationRequest(messages=user(PROMPTS[1]), temperature=0, max_new_tokens=24)])[0][0]
    assert len(free.text) > 6
    stop = free.text[3:5]  # a piece of what the model writes anyway
    cut = local.generate([GenerationRequest(messages=user(PROMPTS[1]), temperature=0, max_new_tokens=24,
                                            stop=[stop])])[0][0]
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]
    assert stop not in cut.text
    assert 1 <= cut.completion_tokens < free.completion_tokens


def test_token_counts_exact(local, lively_dir):
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lively_dir)
    requests = [GenerationRequest(messages=user(p), temperature=0, max_new_tokens=16) for p in PROMPTS]
    results = local.generate(requests)
    eos = tok.eos_token_id
    for p, (c,) in zip(PROMPTS, results):
        ids = tok.apply_chat_template(user(p), add_generation_prompt=True, tokenize=False)
        ids = tok.encode(ids, add_special_tokens=False)
        assert c.prompt_tokens == len(ids)
        with torch.inference_mode():
            out = local.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                       max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
        new = out[0, len(ids):].tolist()
        expected = new.index(eos) + 1 if eos in new else len(new)
        assert c.completion_tokens == expected
        assert c.finish_reason == ("stop" if eos in new else "length")
    assert {c[0].finish_reason for c in results} == {"stop", "length"}  # both paths exercised
    assert local.count_tokens("hello there") == len(tok.encode("hello there", add_special_tokens=False))


def test_usage_recorded_per_stage(local):
    r1 = local.generate([GenerationRequest(messages=user("x"), temperature=0, max_new_tokens=5, stage="research")])
    r2 = local.generate([GenerationRequest(messages=user("hi"), n=2, temperature=0, max_new_tokens=4,
                                           stage="review")])
    usage = local.usage.to_dict()
    assert set(usage) == {"research", "review"}
    assert usage["research"]["prompt_tokens"] == r1[0][0].prompt_tokens
    assert usage["research"]["completion_tokens"] == r1[0][0].completion_tokens
    assert usage["review"]["completion_tokens"] == sum(c.completion_tokens for c in r2[0])
    assert usage["review"]["prompt_tokens"] == 2 * r2[0][0].prompt_tokens  # each sample is a row
    assert usage["review"]["seconds"] > 0


def test_budget_stops_run(local):
    local.budget = Budget(max_tokens=10)  # the check comes before each call: the first one runs
    request = GenerationRequest(messages=user("hello there"), temperature=0, max_new_tokens=16)
    first = local.generate([request])
    assert first[0][0].text
    with pytest.raises(BudgetExceeded, match="token budget spent"):
        local.generate([request])


def test_prompt_longer_than_context_is_an_error(local):
    long = " ".join(["graph"] * (local.context_length + 10))
    with pytest.raises(BackendError, match="context"):
        local.generate([GenerationRequest(messages=user(long), max_new_tokens=4)])


# ---- registry ----------------------------------------------------------------------------------------------

def test_get_backend_caches(lively_dir):
    a = get_backend(f"hf:{lively_dir}")
    assert get_backend(f"hf:{lively_dir}") is a
    assert get_backend(f"hf:{lively_dir}", fresh=True) is not a


def test_unknown_spec_and_bad_paths():
    with pytest.raises(BackendError, match="unknown backend spec"):
        get_backend("gpt5:whatever")
    with pytest.raises(BackendError, match="does not exist"):
        get_backend("hf:/no/such/model", fresh=True)
    with pytest.raises(BackendError, match="base URL"):
        get_backend("openai:m@localhost:8000", fresh=True)


def test_vllm_missing_is_a_clear_error():
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed")
    except ImportError:
        pass
    with pytest.raises(BackendError, match=r"pip install 'cycleresearcher\[vllm\]'"):
        get_backend("vllm:/models/x?tp=2", fresh=True)
    from cycleresearcher.backends.vllm import parse_vllm_spec

    assert parse_vllm_spec("/m?tp=4&gpu_memory_utilization=0.8") == (
        "/m", {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.8})
    with pytest.raises(BackendError, match="unknown vllm option"):
        parse_vllm_spec("/m?tpp=4")


# ---- OpenAI backend against a stub server -----------------------------------------------------------------

class Stub:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1. The model name picks the behaviour."""

    def __init__(self):
        self.calls: list[dict] = []
        self.active = 0
        self.peak = 0
        self.fail_left: dict[str, int] = {"flaky": 2}
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.calls.append(body)
                    stub.active += 1
                    stub.peak = max(stub.peak, stub.active)
                try:
                    status, payload = stub.answer(self.path, body)
                finally:
                    with stub.lock:
                        stub.active -= 1
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path, body):
        model = body["model"]
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}
        if model == "broken":
            return 500, {"error": {"message": "the GPU caught fire"}}
        if model == "bad":
            return 400, {"error": {"message": "max_tokens is too large"}}
        with self.lock:
            left = self.fail_left.get(model, 0)
            if left:
                self.fail_left[model] = left - 1
        if left:
            return 429, {"error": {"message": "slow down"}}
        if model == "slow":
            time.sleep(0.15)
        n = 1 if model == "single" else body.get("n", 1)
        prompt = body["messages"][-1]["content"]
        choices = [{"index": i, "message": {"role": "assistant", "content": f"{prompt} #{i} seed={body.get('seed')}"},
                    "finish_reason": "stop"} for i in range(n)]
        return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": choices,
                     "usage": {"prompt_tokens": 7, "completion_tokens": 3 * n, "total_tokens": 7 + 3 * n}}

    def close(self):
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()


@pytest.fixture
def stub(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                "OPENAI_API_KEY", "CYCLERESEARCHER_API_KEY", "OPENAI_BASE_URL", "CYCLERESEARCHER_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    s = Stub()
    yield s
    s.close()


def openai_backend(stub, model, **options):
    backend = get_backend(f"openai:{model}@{stub.url}", fresh=True)
    backend.backoff_s = 0.01
    backend.max_backoff_s = 0.05
    for k, v in options.items():
        setattr(backend, k, v)
    return backend


def test_openai_basic_request_and_usage(stub):
    b = openai_backend(stub, "ok")
    out = b.generate([GenerationRequest(messages=user("hi"), temperature=0.4, top_p=0.9, max_new_tokens=50, seed=3,
                                        stop=["\n\n"], stage="review")])
    assert out[0][0].text == "hi #0 seed=3"
    sent = stub.calls[0]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"], sent["stop"]) == (
        0.4, 0.9, 50, 3, ["\n\n"])
    assert b.usage.to_dict()["review"]["prompt_tokens"] == 7
    assert b.usage.to_dict()["review"]["completion_tokens"] == 3


def test_openai_n_samples_and_short_servers(stub):
    b = openai_backend(stub, "ok")
    out = b.generate([GenerationRequest(messages=user("q"), n=3, seed=10)])[0]
    assert [c.text for c in out] == ["q #0 seed=10", "q #1 seed=10", "q #2 seed=10"]
    assert len(stub.calls) == 1 and stub.calls[0]["n"] == 3
    assert sum(c.completion_tokens for c in out) == 9 and sum(c.prompt_tokens for c in out) == 7

    single = openai_backend(stub, "single")  # a server that ignores n: one extra call per missing sample
    out = single.generate([GenerationRequest(messages=user("q"), n=3, seed=10)])[0]
    assert len(out) == 3
    assert [c["n"] for c in stub.calls[1:]] == [3, 2, 1]
    assert [c.text for c in out] == ["q #0 seed=10", "q #0 seed=11", "q #0 seed=12"]  # seeds shifted


def test_openai_retries_429_then_succeeds(stub):
    b = openai_backend(stub, "flaky", max_tries=4)
    out = b.generate([GenerationRequest(messages=user("hi"))])
    assert out[0][0].text == "hi #0 seed=None"
    assert len(stub.calls) == 3  # 429, 429, 200


def test_openai_server_error_raises_after_tries(stub):
    b = openai_backend(stub, "broken", max_tries=3)
    with pytest.raises(BackendError, match="HTTP 500 after 3 tries: the GPU caught fire"):
        b.generate([GenerationRequest(messages=user("hi"), stage="review")])
    assert len(stub.calls) == 3
    assert b.usage.to_dict() == {}  # nothing recorded, nothing to score


def test_openai_client_error_not_retried(stub):
    b = openai_backend(stub, "bad", max_tries=5)
    with pytest.raises(BackendError, match="HTTP 400: max_tokens is too large"):
        b.generate([GenerationRequest(messages=user("hi"))])
    assert len(stub.calls) == 1


def test_openai_concurrency_limit(stub, monkeypatch):
    b = openai_backend(stub, "slow", concurrency=3)
    requests = [GenerationRequest(messages=user(f"p{i}")) for i in range(9)]
    out = b.generate(requests)
    assert [r[0].text for r in out] == [f"p{i} #0 seed=None" for i in range(9)]  # order kept
    assert stub.peak == 3

    stub.peak = 0
    monkeypatch.setenv("CYCLERESEARCHER_DEBUG", "1")
    b.generate(requests[:4])
    assert stub.peak == 1


def test_openai_key_lookup(stub, monkeypatch):
    from cycleresearcher.backends.openai import OFFICIAL_BASE_URL, _api_key

    assert _api_key(stub.url) == "EMPTY"
    with pytest.raises(BackendError, match="OPENAI_API_KEY"):
        _api_key(OFFICIAL_BASE_URL)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert _api_key(OFFICIAL_BASE_URL) == "sk-test"


def test_openai_connection_error_retried_then_raised(stub):
    url = stub.url
    stub.close()  # nothing listens there any more
    b = get_backend(f"openai:ok@{url}", fresh=True)
    b.backoff_s, b.max_tries = 0.01, 2
    with pytest.raises(BackendError, match="connection failed after 2 tries"):
        b.generate([GenerationRequest(messages=user("hi"))])


def test_openai_spec_parsing():
    from cycleresearcher.backends.openai import parse_openai_spec

    assert parse_openai_spec("gpt-4o-mini") == ("gpt-4o-mini", None)
    assert parse_openai_spec("Qwen/Qwen2.5-7B@http://localhost:8000/v1/") == ("Qwen/Qwen2.5-7B",
                                                                               "http://localhost:8000/v1")
    assert parse_openai_spec("a@b@https://h/v1") == ("a@b", "https://h/v1")
    with pytest.raises(BackendError, match="model name"):
        parse_openai_spec("@http://localhost:1/v1")


# ---- CLI -----------------------------------------------------------------------------------------------------

def test_cli_generate(lively_dir):
    from typer.testing import CliRunner

    from cycleresearcher.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["generate", "--backend", f"hf:{lively_dir}", "--max-new-tokens", "5", "--n", "2",
                                 "--temperature", "0.9", "--seed", "3", "--json", "hello there"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["completions"]) == 2
    assert data["usage"]["completion_tokens"] == sum(c["completion_tokens"] for c in data["completions"])
    assert "tokens/s" in result.stderr

    bad = runner.invoke(app, ["generate", "--backend", "nope:x", "hi"])
    assert bad.exit_code == 1 and "unknown backend spec" in bad.stderr


def test_spec_options_for_local_models(lively_dir):
    b = get_backend(f"hf:{lively_dir}?max_batch_tokens=123&max_batch_rows=2&threads=1", fresh=True)
    assert (b.max_batch_tokens, b.max_batch_rows) == (123, 2)
    with pytest.raises(BackendError, match="unknown option 'batch'"):
        get_backend(f"hf:{lively_dir}?batch=3", fresh=True)
    with pytest.raises(BackendError, match="takes no path"):
        get_backend("local:/some/path", fresh=True)
