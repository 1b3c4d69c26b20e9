"""Constrained choice on the local backend: left-padded, last-positions-only scoring equals a plain forward pass."""

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
