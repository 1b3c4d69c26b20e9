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
        "samples": 2, "prompt_batch": 2, "review_batch": 4, "penalize_noncompliant": False,  # random weights
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


class WordCountJudge(Judge):
    """An 'independent' judge for the test: the number of words written."""

    spec = "test-words"
    penalize_injections = False

    def _score(self, papers, texts):
        return [Verdict(score=float(len(p.raw_text.split()))) for p in papers]


def _papers_jsonl(path, n=6):
    import json

    words = "We study a problem that matters. Existing methods fall short in several ways. " * 3
    rows = [{"paper_id": f"iclr2018_p{i}", "venue": "ICLR", "year": 2018, "title": f"A Method Number {i}",
             "abstract": words + f"We propose method {i}, which works. Experiments show gains.",
             "decision": "Accept" if i % 2 else "Reject", "reviews": [{"rating": 5 + i % 3, "text": "ok"}]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.timeout(600)
def test_warm_start_heldout_judge_and_report(tmp_path, tiny_model_dir):
    from cycleresearcher.evaluate import evaluate_papers
    from cycleresearcher.io import read_json, read_jsonl
    from cycleresearcher.train.report import write_report

    topics = tmp_path / "topics.txt"
    topics.write_text("graph neural networks\nsparse attention\ncontrastive learning\n")
    config = CycleConfig.from_dict({
        "policy": f"hf:{tiny_model_dir}", "reviewer": "test", "prompts_file": str(topics), "rounds": 1,
        "samples": 2, "prompt_batch": 2, "heldout": 1, "heldout_samples": 2, "judge": "words",
        "penalize_noncompliant": False,
        "warm_start": str(_papers_jsonl(tmp_path / "papers.jsonl")), "warm_start_examples": 4,
        "sft": {"lora": False, "max_steps": 2, "batch_size": 2, "learning_rate": 0.01, "max_length": 1024},
        "research": {"task": "idea", "max_new_tokens": 16, "temperature": 1.0, "top_k_references": 0},
        "simpo": {"max_steps": 1, "batch_size": 1, "use_trl": "never", "max_length": 1000,
                  "max_prompt_length": 900, "eval_margins": False}})
    out = tmp_path / "run"
    cycle = Cycle.open(out, config, reward=CharCountJudge(), judge=WordCountJudge())
    cycle.run()
    warm = out / "warm-start" / "checkpoint"
    assert (out / "warm-start" / "train.json").exists() and warm.exists()
    assert cycle.policy_spec(0) == f"hf:{warm}"  # round 0 samples from the warm start
    labels = [p.name for p in sorted((out / "heldout").iterdir())]
    assert sorted(labels) == ["initial", "r00", "r01"]
    held_prompt = {row["prompt_id"] for row in read_jsonl(out / "heldout" / "r00" / "papers.jsonl")}
    trained = {row["prompt_id"] for row in read_jsonl(out / "round-00" / "papers.jsonl")}
    assert len(held_prompt) == 1 and not held_prompt & trained  # never trained on
    summary = read_json(out / "heldout" / "r01" / "summary.json")
    assert summary["judge"] == "test-words" and summary["n_papers"] == 2 and summary["judge_mean"]["n"] == 2
    report, _ = write_report(out)
    text = report.read_text()
    assert "## Held-out prompts, independent judge" in text and "| initial |" in text and "| r01 |" in text
    assert "Held-out judge: initial -> r01" in text
    # `eval papers` with the same judge reproduces the report's held-out figures
    import cycleresearcher.judges as J

    original = J.get_judge
    J.get_judge = lambda spec, **kw: WordCountJudge()
    try:
        again = evaluate_papers(out, "test-words")
    finally:
        J.get_judge = original
    assert [h["judge_mean"] for h in again["heldout"]] == [
        read_json(out / "heldout" / label / "summary.json")["judge_mean"] for label in ("initial", "r00", "r01")]
