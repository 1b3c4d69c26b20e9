"""Backends: the local transformers backend on a tiny model, the registry, the CLI (OpenAI: test_backend_openai.py)."""

from __future__ import annotations

import json
import shutil

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
