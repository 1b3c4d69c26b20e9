"""Constrained choice on the local backend: left-padded, last-positions-only scoring equals a plain forward pass."""

import pytest
import torch

from cycleresearcher.backends import get_backend


def test_choice_logprobs_match_unpadded_forward(tiny_model_dir):
    backend = get_backend(f"hf:{tiny_model_dir}", fresh=True)
    assert backend.supports_choice_scoring and backend.default_review_mode == "set"  # only `local` is per-review
    conversations = [[{"role": "user", "content": "Rate it."}],
                     [{"role": "user", "content": "A much longer question about the paper and its rating?"}]]
    choices = ["1", "3", "10"]
    got = backend.choice_logprobs(conversations, choices)
    model, tok = backend.model, backend.tokenizer
    for conv, row in zip(conversations, got):
        prompt = backend.prompt_ids(conv)
        for choice, value in zip(choices, row):
            answer = tok.encode(choice, add_special_tokens=False) + [tok.eos_token_id]
            ids = torch.tensor([prompt + answer])
            with torch.no_grad():
                logps = torch.log_softmax(model(input_ids=ids).logits.float(), -1)[0]
            expected = sum(float(logps[len(prompt) - 1 + k, t]) for k, t in enumerate(answer))
            assert abs(value - expected) < 1e-3
    assert backend.usage.to_dict()["choice"]["calls"] == 1  # one batched call, accounted under "choice"


# ---- choice from a server's top_logprobs (hand-computed) ------------------------------------------------------

def test_score_choices_by_hand():
    import math

    from cycleresearcher.backends.logprob_choice import score_choices

    ln = math.log
    # reply " Accept": a leading space token, then "Accept"; "reject" in lower case is the runner-up
    positions = [(" ", ln(0.9), [(" ", ln(0.9)), ("Acc", ln(0.05))]),
                 ("Accept", ln(0.7), [("Accept", ln(0.7)), ("reject", ln(0.2))])]
    accept, reject = score_choices(positions, ["Accept", "Reject"])
    assert accept == pytest.approx(ln(0.7)) and reject == pytest.approx(ln(0.2))  # case folded, space skipped

    # "1" vs "10" when the reply goes "1", "0": the stop after "1" has 1 - 0.25 of the mass
    positions = [("1", ln(0.5), [("1", ln(0.5)), ("6", ln(0.4))]), ("0", ln(0.25), [("0", ln(0.25))])]
    one, six, ten, three = score_choices(positions, ["1", "6", "10", "3"])
    assert ten == pytest.approx(ln(0.5 * 0.25))
    assert one == pytest.approx(ln(0.5 * 0.75))
    assert six == pytest.approx(ln(0.4))
    assert three == pytest.approx(ln(0.4) - 1e-3)  # unseen: just below the smallest shown

    # off the greedy path, "1" and "10" share the token "1": each gets half of it
    positions = [("6", ln(0.6), [("6", ln(0.6)), ("1", ln(0.3))])]
    one, six, ten = score_choices(positions, ["1", "6", "10"])
    assert six == pytest.approx(ln(0.6)) and one == pytest.approx(ln(0.15)) and ten == pytest.approx(ln(0.15))

    assert score_choices([], ["1", "2"]) == [-math.inf, -math.inf]

    # a lead-in first ("Your rating is 6."): the answer is read where the reply gives it, not at its first token
    positions = [("Your", ln(0.4), [("Your", ln(0.4)), ("1", ln(0.1))]), (" rating", ln(0.9), []),
                 (" is", ln(0.9), []), (" ", ln(0.5), [(" ", ln(0.5))]),
                 ("6", ln(0.5), [("6", ln(0.5)), ("5", ln(0.2)), ("1", ln(0.1))]), (".", ln(0.9), [(".", ln(0.9))])]
    one, five, six, ten = score_choices(positions, ["1", "5", "6", "10"])
    assert six == pytest.approx(ln(0.5)) and five == pytest.approx(ln(0.2))
    assert one == pytest.approx(ln(0.05)) and ten == pytest.approx(ln(0.05))  # "1" shared with "10"
    # no answer spelled anywhere: the position where the answers' first tokens weigh most
    positions = [("The", ln(0.5), [("The", ln(0.5)), ("3", ln(0.05))]),
                 (" paper", ln(0.5), [(" paper", ln(0.5)), (" 8", ln(0.3)), (" 3", ln(0.1))])]
    three, eight = score_choices(positions, ["3", "8"])
    assert three == pytest.approx(ln(0.1)) and eight == pytest.approx(ln(0.3))


def test_threads_follow_the_load(monkeypatch):
    from cycleresearcher.backends import threads

    assert threads._threads_for_load(2, 3.5)[0] == 1  # oversubscribed
    assert threads._threads_for_load(2, 1.2)[0] == 2
    assert threads._threads_for_load(4, None)[0] == 4
    monkeypatch.setattr(threads, "_load", lambda: 9.0)
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    monkeypatch.delenv("CYCLERESEARCHER_THREADS", raising=False)
    assert threads.default_threads() == 1 and "oversubscribed" in threads.thread_reason(None)
    monkeypatch.setenv("CYCLERESEARCHER_THREADS", "2")
    assert threads.default_threads() == 2 and "CYCLERESEARCHER_THREADS" in threads.thread_reason(None)
