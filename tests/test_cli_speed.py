"""Speed on the embedded model without changing answers: choice scoring reads each prompt once (and a shared
prefix once), samples stop when they start repeating themselves, and the CLI's defaults for the embedded
model spend no tokens the small model cannot use. bench/cli_speed.py measures the seconds."""

import pytest
import torch
from typer.testing import CliRunner

from cycleresearcher.backends import get_backend
from cycleresearcher.schema import GenerationRequest


@pytest.fixture
def tiny(tiny_model_dir):
    return get_backend(f"hf:{tiny_model_dir}?threads=1", fresh=True)


def _forwarded_tokens(model):
    seen = []

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen.append(int(ids.numel()))

    return seen, model.register_forward_pre_hook(hook, with_kwargs=True)


def test_choice_scoring_reads_each_prompt_once_and_shares_prefixes(tiny):
    review = "Here is your review of a paper:\n\n" + "The method is sound and the experiments are small. " * 20
    questions = ["How sound is it? Answer with one number.", "How clear is it? Answer with one number."]
    conversations = [[{"role": "user", "content": f"{review}\n\n{q}"}] for q in questions]
    choices = ["1", "3", "5", "6", "8", "10"]
    seen, handle = _forwarded_tokens(tiny.model)
    try:
        got = tiny.choice_logprobs(conversations, choices)
    finally:
        handle.remove()
    prompts = [tiny.prompt_ids(c) for c in conversations]
    # the old way ran len(choices) whole rows per prompt; now: prompt 1, the rest of prompt 2, two answer batches
    assert sum(seen) < len(prompts[0]) + 40 + 2 * len(choices) * 2
    assert sum(seen) < sum(len(p) for p in prompts) * len(choices) / 4
    tok = tiny.tokenizer
    for prompt, row in zip(prompts, got):  # the same numbers as one plain forward per (prompt, answer)
        for choice, value in zip(choices, row):
            answer = tok.encode(choice, add_special_tokens=False) + [tok.eos_token_id]
            with torch.no_grad():
                logps = torch.log_softmax(tiny.model(input_ids=torch.tensor([prompt + answer])).logits.float(), -1)[0]
            assert value == pytest.approx(sum(float(logps[len(prompt) - 1 + k, t]) for k, t in enumerate(answer)),
                                          abs=1e-3)


def test_a_sample_that_repeats_itself_stops_and_is_cut_where_the_repeat_began(tiny_model_dir):
    request = GenerationRequest(messages=[{"role": "user", "content": "hello"}], max_new_tokens=64, temperature=0)
    plain = get_backend(f"hf:{tiny_model_dir}?threads=1", fresh=True).generate([request])[0][0]
    looping = get_backend(f"hf:{tiny_model_dir}?threads=1&loops=8", fresh=True).generate([request])[0][0]
    # the random tiny model repeats one token greedily: 64 tokens of it without the stop
    assert plain.finish_reason == "length" and plain.completion_tokens == 64
    assert looping.finish_reason == "loop" and looping.completion_tokens == 9  # one token, then 8 repeated
    assert plain.text.startswith(looping.text) and 0 < len(looping.text) < len(plain.text)


def test_loop_stop_leaves_text_that_does_not_repeat_alone(tiny_model_dir):
    from cycleresearcher.backends.local_decode import loop_stop

    stop = loop_stop(prompt_width=2, rows=2, span=4, end_ids=frozenset({0}))
    varied = list(range(10, 40))
    looped = [5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9]
    for n in range(1, 31):  # generate calls the criteria once per new token
        done = stop(torch.tensor([[1, 1] + varied[:n], [1, 1] + looped[:n]]), None)
    assert done.tolist() == [False, True] and stop.cut == [None, 5]


def test_cli_defaults_for_the_embedded_model(monkeypatch, tmp_path):
    """research and review on `local` stop loops and spend fewer tokens; other backends keep the defaults."""
    from cycleresearcher.cli import agents

    assert agents.embedded_spec("local", bf16=False) == "local:loops=48"
    assert agents.embedded_spec("local", bf16=True) == "local:loops=48&dtype=bfloat16"
    assert agents.embedded_spec("local:dtype=float32", bf16=True) == "local:dtype=float32&loops=48"
    assert agents.embedded_spec("local:loops=0", bf16=False) == "local:loops=0"  # the user's choice wins
    assert agents.embedded_spec("openai:m@http://h/v1", bf16=True) == "openai:m@http://h/v1"
    assert agents.research_defaults("local") == (1024, 0) and agents.research_defaults("fake") == (1536, 1)
    assert agents.review_tokens("local") == 1024 and agents.review_tokens("hf:/m") == 2048

    seen = {}

    def fake_get_backend(spec):
        seen["spec"] = spec
        raise RuntimeError("stop here")

    monkeypatch.setattr("cycleresearcher.backends.get_backend", fake_get_backend)
    CliRunner().invoke(agents.app, ["research", "--topic", "graphs", "--out", str(tmp_path / "p")])
    assert seen["spec"] == agents.embedded_spec("local") and seen["spec"].startswith("local:loops=48")
