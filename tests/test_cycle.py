"""The cycle: pair selection, the run directory, resume after kill -9, and the report."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cycleresearcher.backends.fake import FakeBackend
from cycleresearcher.schema import Paper
from cycleresearcher.errors import ConfigError, InputError
from cycleresearcher.io import append_jsonl, read_jsonl
from cycleresearcher.judges import Judge
from cycleresearcher.schema import Verdict
from cycleresearcher.train.cycle import Cycle, CycleConfig, round_prompts, select_pairs
from cycleresearcher.train.report import write_report

FIXTURES = Path(__file__).parent / "fixtures"
PAPER_TEXT = (FIXTURES / "paper_one_completion.txt").read_text()


def _paper(pid, prompt, index, text="t"):
    return Paper(paper_id=pid, prompt_id=prompt, sample_index=index, raw_text=text,
                 messages=[{"role": "user", "content": prompt}])


def test_select_pairs_best_against_worst_ties_and_missing():
    papers = [_paper("a0", "a", 0, "A0"), _paper("a1", "a", 1, "A1"), _paper("a2", "a", 2, "A2"),
              _paper("b0", "b", 0), _paper("b1", "b", 1),  # tie
              _paper("c0", "c", 0), _paper("c1", "c", 1),  # one reward missing
              _paper("d0", "d", 0), _paper("d1", "d", 1)]  # margin below the minimum
    rewards = {"a0": 5.0, "a1": 6.5, "a2": 3.0, "b0": 4.0, "b1": 4.0, "c0": 6.0, "c1": None, "d0": 5.0, "d1": 5.2}
    pairs = select_pairs(papers, rewards, min_margin=0.5)
    assert len(pairs) == 1
    pair = pairs[0]
    assert (pair.chosen, pair.rejected, pair.chosen_score, pair.rejected_score) == ("A1", "A2", 6.5, 3.0)
    assert pair.margin == 3.5 and pair.prompt == [{"role": "user", "content": "a"}]
    assert len(select_pairs(papers, rewards, min_margin=0.0)) == 2  # d now passes; the tie b never does


IDEA_ANSWER = ("```latex\n\\title{Sparse Attention for Long Graphs}\n\\begin{abstract}\nLong graphs are slow. We "
               "sparsify attention. It is 3x faster.\n\\end{abstract}\n```\n\n## Motivation\nDense attention is "
               "quadratic.\n\n## Main Idea\nAttend to k neighbours.")


def test_noncompliant_sample_gets_the_minimum_and_loses_its_pair():
    from cycleresearcher.formats.paper import parse_paper
    from cycleresearcher.train.cycle import penalize_noncompliant

    whole = parse_paper(IDEA_ANSWER)
    half = parse_paper(IDEA_ANSWER.split("## Main Idea")[0])  # a reward model reading text may like it better
    for paper, pid, index in ((whole, "w", 0), (half, "h", 1)):
        paper.paper_id, paper.prompt_id, paper.sample_index = pid, "p", index
        paper.messages = [{"role": "user", "content": "p"}]
    verdicts = {"w": Verdict(score=4.0), "h": Verdict(score=6.0)}
    for paper in (whole, half):
        penalize_noncompliant(paper, verdicts[paper.paper_id], "idea", 1.0)
    assert verdicts["w"].score == 4.0 and not verdicts["w"].penalized
    h = verdicts["h"]
    assert (h.score, h.unpenalized_score, h.penalized) == (1.0, 6.0, True)
    assert "missing the `## Main Idea` section" in h.problems[-1] and "'idea'" in h.problems[-1]
    pairs = select_pairs([whole, half], {pid: v.score for pid, v in verdicts.items()})
    assert [(p.chosen_score, p.rejected_score) for p in pairs] == [(4.0, 1.0)]
    # The paper task asks for more than the idea task: the whole idea answer is not a whole paper.
    v = Verdict(score=4.0)
    penalize_noncompliant(whole, v, "paper", 1.0)
    assert v.penalized and v.score == 1.0


def test_round_prompts_deterministic_subset():
    ids = [f"p{i}" for i in range(9)]
    assert round_prompts(ids, 0, 0, 0) == ids
    a, b = round_prompts(ids, 3, 7, 1), round_prompts(ids, 3, 7, 1)
    assert a == b and len(a) == 3 and a != round_prompts(ids, 3, 7, 2)


def test_jsonl_tail_cut_by_crash_is_dropped(tmp_path):
    path = tmp_path / "x.jsonl"
    append_jsonl(path, [{"a": 1}])
    with open(path, "a") as fh:
        fh.write('{"a": 2, "b"')  # killed mid-write
    assert read_jsonl(path) == [{"a": 1}]
    append_jsonl(path, [{"a": 3}])
    assert read_jsonl(path) == [{"a": 1}, {"a": 3}]


class LengthReward(Judge):
    """A deterministic stand-in reward: depends on the sample text only."""

    spec = "test-length"
    penalize_injections = False

    def __init__(self):
        self.calls = 0

    def _score(self, papers, texts):
        self.calls += len(papers)
        return [Verdict(score=float(len(p.raw_text) % 7)) for p in papers]


def _responder(request, i):
    return PAPER_TEXT.replace("ResGate", f"ResGate{request.seed}x{i}" * (1 + i))


def _fake_trainer(calls):
    def train(spec, pairs, out, config):
        calls.append((spec, len(pairs)))
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        return {"losses": [0.9, 0.7], "trainer": "fake", "mean_margin_end": 0.1}
    return train


def _config(tmp_path, **kw):
    topics = tmp_path / "topics.txt"
    topics.write_text("graph neural networks\n# a comment\nsparse attention\ncontrastive learning\n")
    return CycleConfig(policy="fake", reviewer="test", prompts_file=str(topics), rounds=2, samples=3,
                       prompt_batch=1, review_batch=2, research={"max_new_tokens": 4000}, **kw)


def test_cycle_writes_the_run_directory_and_report(tmp_path):
    backends, train_calls = [], []

    def policy(spec):
        backends.append((spec, FakeBackend(responder=_responder)))
        return backends[-1][1]

    out = tmp_path / "run"
    metrics = Cycle.open(out, _config(tmp_path), policy_factory=policy, reward=LengthReward(),
                         trainer=_fake_trainer(train_calls)).run()
    assert [m.round for m in metrics] == [0, 1]
    assert [spec for spec, _ in backends] == ["fake", f"hf:{out / 'round-00' / 'checkpoint'}"]
    assert train_calls[0] == ("fake", metrics[0].n_pairs) and metrics[0].n_pairs >= 1
    for r in (0, 1):
        rdir = out / f"round-{r:02d}"
        papers = read_jsonl(rdir / "papers.jsonl")
        assert len(papers) == 9 and len({p["paper_id"] for p in papers}) == 9
        assert len(read_jsonl(rdir / "reviews.jsonl")) == 9
        assert (rdir / "checkpoint" / "config.json").exists()
        m = json.loads((rdir / "metrics.json").read_text())
        assert m["n_papers"] == 9 and m["losses"] == [0.9, 0.7] and m["seconds"]["research"] >= 0
        for pair in read_jsonl(rdir / "pairs.jsonl"):
            assert pair["chosen_score"] > pair["rejected_score"]
    assert (out / "config.yaml").exists() and len(read_jsonl(out / "prompts.jsonl")) == 3
    report, summaries = write_report(out)
    text = report.read_text()
    assert "| 0 | 9 | 9 |" in text and "| 1 | 9 | 9 |" in text and "## Best paper" in text
    assert (out / "reward.png").stat().st_size > 5000
    with pytest.raises(InputError, match="already holds a run"):
        Cycle.open(out, _config(tmp_path))


def test_unknown_config_keys_rejected(tmp_path):
    with pytest.raises(ConfigError, match="unknown"):
        CycleConfig.from_dict({"rounds": 1, "bogus": 2})
    with pytest.raises(ConfigError, match="nope"):
        CycleConfig.from_dict({"research": {"nope": 1}})
    with pytest.raises(ConfigError, match="nope"):
        CycleConfig(research={"nope": 1})
    with pytest.raises(ConfigError, match="must be an integer"):
        CycleConfig.from_dict({"rounds": "two"})


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from cycleresearcher.backends.fake import FakeBackend
    from cycleresearcher.train.cycle import Cycle
    from test_cycle import LengthReward, _fake_trainer, _responder

    def slow(request, i):
        time.sleep(0.3)
        return _responder(request, i)

    Cycle.open(Path({out!r}), resume=True, policy_factory=lambda spec: FakeBackend(responder=slow),
               reward=LengthReward(), trainer=_fake_trainer([])).run()
""")


def test_kill_9_then_resume_does_not_redo_finished_samples(tmp_path):
    out = tmp_path / "run"
    Cycle.open(out, _config(tmp_path))  # writes config.yaml; the child resumes it
    script = tmp_path / "child.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out)))
    child = subprocess.Popen([sys.executable, str(script)], env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    papers = out / "round-00" / "papers.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and len(read_jsonl(papers)) < 6 and child.poll() is None:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    saved = read_jsonl(papers)
    assert 3 <= len(saved) < 9, "the child should be killed in the middle of round 0"

    seen = []
    policy = FakeBackend(responder=_responder)
    reward = LengthReward()
    Cycle.open(out, resume=True, policy_factory=lambda spec: seen.append(spec) or policy, reward=reward,
               trainer=_fake_trainer([])).run()
    # Exactly one call per missing prompt of round 0 (prompt_batch 1, 3 samples each), then 3 for round 1:
    # a resume that sampled round 0 again would make more calls.
    missing = (9 - len(saved)) // 3
    assert len(policy.history) == missing + 3
    assert [r.n for r in policy.history] == [3] * (missing + 3)
    assert seen == ["fake", f"hf:{out / 'round-00' / 'checkpoint'}"]
    after = read_jsonl(papers)
    assert after[: len(saved)] == saved and len(after) == 9
    assert reward.calls == (9 - 0) + 9  # round 0 had no reviews yet; round 1 all
    assert (out / "round-01" / "metrics.json").exists()


def test_report_compares_the_judge_over_the_policies_the_rounds_trained(tmp_path):
    """With a warm start, `initial` -> last mixes the SFT into the rise; the rounds-alone line and the hacking
    warning compare from r00, the policy the first training round samples from."""
    from cycleresearcher.io import write_json_atomic
    from cycleresearcher.schema import RoundMetrics
    from cycleresearcher.train.report import RoundSummary, _heldout_lines

    judged = {"initial": [1.0, 1.2, 0.8, 1.1], "r00": [5.0, 5.2, 4.9, 5.1], "r01": [4.6, 4.4, 4.5, 4.7]}
    for label, scores in judged.items():
        folder = tmp_path / "heldout" / label
        folder.mkdir(parents=True)
        append_jsonl(folder / "verdicts.jsonl", [{"score": s} for s in scores])
        write_json_atomic(folder / "summary.json", {"label": label, "judge": "reward:j", "n_papers": len(scores),
                                                   "judge_mean": {"value": sum(scores) / len(scores), "ci_low": 0, "ci_high": 9},
                                                   "compliance": 1.0, "mean_words": 100})
    rounds = [RoundSummary(RoundMetrics(round=r), [], None, reward_ci={"value": v}) for r, v in ((0, 4.0), (1, 4.5))]
    text = "\n".join(_heldout_lines(tmp_path, rounds))
    assert "initial -> r01: +3." in text and "a rise larger than its interval" in text
    assert "Preference rounds alone" in text and "r00 -> r01: -0.50" in text
    assert "Warning: the training reward rose (4.00 -> 4.50) while the held-out judge fell (r00 -> r01" in text
