"""The cycle end to end with the real SimPO trainer on the tiny random Llama: round 1 samples from round 0's
checkpoint, whose weights differ from the base model's."""

from pathlib import Path

import pytest
import torch

from cycleresearcher.backends import get_backend
from cycleresearcher.judges import Judge
from cycleresearcher.schema import Verdict
from cycleresearcher.train.cycle import Cycle, CycleConfig


class CharCountJudge(Judge):
    """Rewards longer samples: deterministic, and different between samples of one prompt."""

    spec = "test-chars"
    penalize_injections = False

    def _score(self, papers, texts):
        return [Verdict(score=float(len(p.raw_text))) for p in papers]


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().float() for k, v in model.state_dict().items()}


@pytest.mark.timeout(600)
def test_two_rounds_with_the_real_trainer(tmp_path, tiny_model_dir):
    topics = tmp_path / "topics.txt"
    topics.write_text("graph neural networks\nsparse attention\n")
    config = CycleConfig.from_dict({
        "policy": f"hf:{tiny_model_dir}", "reviewer": "test", "prompts_file": str(topics), "rounds": 2,
        "samples": 2, "prompt_batch": 2, "review_batch": 4,
        "research": {"max_new_tokens": 24, "temperature": 1.0, "top_k_references": 0},
        "simpo": {"max_steps": 2, "batch_size": 1, "learning_rate": 0.05, "use_trl": "never",
                  "max_length": 1000, "max_prompt_length": 900, "eval_margins": False}})
    policies, trained_prompts = [], []

    def trainer(spec, pairs, out, cfg):
        from cycleresearcher.train.simpo import build_preference_dataset, train_simpo
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(spec)
        trained_prompts.extend(build_preference_dataset(pairs, tok, cfg.max_prompt_length)["prompt"])
        return train_simpo(spec, pairs, out, cfg)

    def policy_factory(spec):
        backend = get_backend(spec, fresh=True)
        policies.append((spec, _state(backend.model)))
        return backend

    out = tmp_path / "run"
    metrics = Cycle.open(out, config, policy_factory=policy_factory, reward=CharCountJudge(), trainer=trainer).run()
    assert [m.round for m in metrics] == [0, 1] and all(m.n_pairs >= 1 for m in metrics)
    assert [spec for spec, _ in policies] == [f"hf:{tiny_model_dir}", f"hf:{out / 'round-00' / 'checkpoint'}"]
    base, round1 = policies[0][1], policies[1][1]
    # The policy round 1 sampled from is round 0's checkpoint, as saved...
    saved = get_backend(f"hf:{out / 'round-00' / 'checkpoint'}", fresh=True).model.state_dict()
    assert all(torch.equal(round1[k], v.float()) for k, v in saved.items())
    # ...and training moved it away from the base model.
    changed = [k for k in base if not torch.equal(base[k], round1[k])]
    assert changed, "SimPO training left every weight unchanged"
    assert metrics[0].losses and all(loss == loss for loss in metrics[0].losses)  # finite losses recorded
    # Every pair trained on exactly the conversation its papers were sampled from (never a cut prompt).
    from transformers import AutoTokenizer

    from cycleresearcher.io import read_jsonl

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    sampled = {row["id"]: tok.apply_chat_template(row["messages"], tokenize=False, add_generation_prompt=True)
               for row in read_jsonl(out / "prompts.jsonl")}
    assert trained_prompts and set(trained_prompts) <= set(sampled.values())
    assert all(p.count("You are an expert machine-learning researcher") == 1 for p in trained_prompts)
