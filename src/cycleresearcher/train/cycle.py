"""The CycleResearcher loop: sample papers, review them, pair best against worst, train SimPO + NLL, repeat.

    cycleresearcher cycle --rounds 2 --samples 3 --prompts ../shared/data/topics.txt \\
        --bib ../shared/data/sample.bib --policy local --reviewer local --out runs/tiny
    cycleresearcher cycle --preset tiny --prompts ../shared/data/topics.txt --out runs/tiny

Every step appends to the run directory (train/rundir.py) as soon as it finishes, so a crash or `kill -9`
loses at most the batch in flight, and `--resume` picks up where the run stopped. The reward is any judge
(judges.py): a reviewer backend (mean rating of its reviews) or the scalar reward model (`reward:DIR`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import shutil
import time
from pathlib import Path
from typing import Callable, Optional


from ..backends.base import Backend, Budget
from ..config import ConfigError
from ..errors import InputError
from ..io import append_jsonl, peak_rss_mb, read_json, read_jsonl, write_json_atomic, write_jsonl_atomic
from ..judges import Judge, penalize
from ..research import Researcher, compliance_problems
from ..schema import Paper, PreferencePair, RoundMetrics, Verdict
from .cycle_config import CycleConfig, resume_config
from .heldout import HeldOut, split_prompts
from .rundir import RunDir, load_prompt_file
from .warmstart import WARM_START_DIR, run_warm_start
from .simpo_config import SimPOConfig

log = logging.getLogger(__name__)

# ---- pure steps ------------------------------------------------------------------------------------------

def select_pairs(papers: list[Paper], rewards: dict[str, Optional[float]], min_margin: float = 0.0
                 ) -> list[PreferencePair]:
    """Per prompt, the highest- against the lowest-rewarded paper (the paper's rule).

    Papers without a reward are left out; a prompt with fewer than two rewarded papers, a tie, or a margin not
    above `min_margin` gives no pair. Ties between equal rewards are broken by sample index.
    """
    by_prompt: dict[str, list[tuple[float, int, Paper]]] = {}
    for p in papers:
        r = rewards.get(p.paper_id)
        if r is not None:
            by_prompt.setdefault(p.prompt_id, []).append((r, p.sample_index, p))
    pairs = []
    for prompt_id in sorted(by_prompt):
        scored = sorted(by_prompt[prompt_id], key=lambda t: (-t[0], t[1]))
        if len(scored) < 2:
            continue
        (best, _, chosen), (worst, _, rejected) = scored[0], scored[-1]
        if best - worst <= max(min_margin, 0.0):
            continue
        pairs.append(PreferencePair(prompt_id=prompt_id, prompt=chosen.messages, chosen=chosen.raw_text,
                                    rejected=rejected.raw_text, chosen_score=best, rejected_score=worst,
                                    chosen_id=chosen.paper_id, rejected_id=rejected.paper_id))
    return pairs


def round_prompts(prompt_ids: list[str], per_round: int, seed: int, round_index: int) -> list[str]:
    if per_round <= 0 or per_round >= len(prompt_ids):
        return list(prompt_ids)
    rng = random.Random(seed * 1000 + round_index)
    chosen = set(rng.sample(prompt_ids, per_round))
    return [p for p in prompt_ids if p in chosen]


# ---- the loop --------------------------------------------------------------------------------------------

PolicyFactory = Callable[[str], Backend]
Trainer = Callable[[str, list[PreferencePair], Path, SimPOConfig], dict]


def _default_policy(spec: str) -> Backend:
    from ..backends import get_backend

    return get_backend(spec, fresh=True)


def _default_trainer(spec: str, pairs: list[PreferencePair], out: Path, config: SimPOConfig) -> dict:
    from .simpo import train_simpo

    return train_simpo(spec, pairs, out, config)


class Cycle:
    """One run directory and what it takes to finish it. `run()` does only what is not on disk yet."""

    def __init__(self, out: Path, config: CycleConfig, policy_factory: PolicyFactory = _default_policy,
                 reward: Optional[Judge] = None, trainer: Trainer = _default_trainer,
                 progress: bool = False, judge: Optional[Judge] = None) -> None:
        self.run_dir = RunDir(Path(out))
        self.config = config
        self.policy_factory = policy_factory
        self._reward = reward
        self.trainer = trainer
        self.progress = progress
        self.budget = Budget(max_tokens=config.max_tokens, max_seconds=config.max_seconds)
        self.heldout = HeldOut(self.run_dir, task=config.research.task)
        self._judge: Optional[Judge] = judge

    # -- setup
    @classmethod
    def open(cls, out: Path, config: Optional[CycleConfig] = None, resume: bool = False, **kwargs) -> "Cycle":
        """A new run (refuses a folder holding a run unless resuming) or the saved run at `out`."""
        run_dir = RunDir(Path(out))
        if resume:
            saved = run_dir.read_config()
            if saved is None:
                raise InputError(f"nothing to resume: {run_dir.config_path} does not exist")
            merged = resume_config(CycleConfig.from_dict(saved), config)
            if merged != CycleConfig.from_dict(saved):
                log.info("resuming with rounds=%s, max_tokens=%s, max_seconds=%s", merged.rounds,
                         merged.max_tokens, merged.max_seconds)
                run_dir.write_config(dataclasses.asdict(merged))
            return cls(run_dir.root, merged, **kwargs)
        if config is None:
            raise ConfigError("a new run needs a config")
        if run_dir.config_path.exists():
            raise InputError(f"{run_dir.root} already holds a run",
                             hint="pass --resume to continue it, or choose another --out")
        run_dir.root.mkdir(parents=True, exist_ok=True)
        run_dir.write_config(dataclasses.asdict(config))
        return cls(run_dir.root, config, **kwargs)

    @property
    def reward(self) -> Judge:
        if self._reward is None:
            from ..judges import get_judge

            self._reward = get_judge(self.config.reviewer, review_config=self.config.review)
        return self._reward

    def prompts(self, researcher: Researcher) -> list[dict]:
        """The prompts every round samples from, built once and saved (prompts.jsonl)."""
        path = self.run_dir.prompts_path
        if path.exists():
            return read_jsonl(path)
        from ..retrieve import load_references

        if not self.config.prompts_file:
            raise ConfigError("the cycle needs a prompts file (--prompts)")
        topics = load_prompt_file(Path(self.config.prompts_file))
        if self.config.max_prompts:
            topics = topics[: self.config.max_prompts]
        references = load_references(Path(self.config.bib)) if self.config.bib else []
        # Prompts fit the trainer's max_prompt_length as they are built, so a pair trains on exactly the context
        # its papers were sampled from (the trainer refuses to cut one).
        limit = self.config.simpo.max_prompt_length
        rows = [{"id": t["id"], "topic": t["topic"], "messages": researcher.prompt(t["topic"], references, limit)}
                for t in topics]
        write_jsonl_atomic(path, rows)
        return rows

    @property
    def judge(self) -> Judge:
        """The held-out judge: `judge` from the config, else the training reward (not independent: warned)."""
        if self._judge is None:
            if self.config.judge:
                from ..judges import get_judge

                self._judge = get_judge(self.config.judge, review_config=self.config.review)
            else:
                log.warning("no independent judge (config `judge`): the held-out papers are scored by the training "
                            "reward, which a policy can learn to please")
                self._judge = self.reward
        return self._judge

    def policy_spec(self, r: int) -> str:
        """Round r samples from the last checkpoint written before it, the warm start, or the initial policy."""
        for prev in range(r - 1, -1, -1):
            if self.run_dir.checkpoint(prev).exists():
                return f"hf:{self.run_dir.checkpoint(prev)}"
        warm = self.run_dir.root / WARM_START_DIR / "checkpoint"
        if self.config.warm_start and warm.exists():
            return f"hf:{warm}"
        return self.config.policy

    def split(self, prompts: list[dict]) -> tuple[list[str], list[str]]:
        """(train prompt ids, held-out prompt ids)."""
        return split_prompts([p["id"] for p in prompts], self.config.heldout, self.config.seed)

    # -- running
    def run(self) -> list[RoundMetrics]:
        if self.config.warm_start:
            self._warm_start()
        metrics = []
        for r in range(self.config.rounds):
            if self.run_dir.done(r):
                metrics.append(RoundMetrics.from_dict(read_json(self.run_dir.file(r, "metrics.json"))))
                continue
            metrics.append(self.run_round(r))
        if self.config.heldout:
            self._heldout_with(self.policy_spec(self.config.rounds), f"r{self.config.rounds:02d}")
        return metrics

    def _researcher(self, spec: str, r: int) -> Researcher:
        policy = self.policy_factory(_with_options(spec, self.config.policy_options))
        policy.budget = self.budget
        return Researcher(policy, dataclasses.replace(self.config.research, seed=self.config.seed + r))

    def _heldout_with(self, spec: str, label: str, researcher: Optional[Researcher] = None) -> None:
        """Held-out papers of the policy `spec` (sampled unless on disk), then judged."""
        if self.heldout.done(label):
            return
        own = researcher is None
        researcher = researcher or self._researcher(spec, 0)
        prompts = self.prompts(researcher)
        by_id = {p["id"]: p for p in prompts}
        held = self.split(prompts)[1]
        # The same seed for every label: the policies differ, the sampling noise is shared.
        self.heldout.sample(label, researcher, [by_id[i] for i in held], self.config.heldout_samples,
                            seed=self.config.seed * 1000 + 777, batch=self.config.prompt_batch)
        if own:
            del researcher
            _release_models()
        self.heldout.score(label, self.judge, spec, self.config.reviewer)

    def _warm_start(self) -> None:
        """SFT on real papers before round 0 (once); the initial policy's held-out papers are judged first."""
        if (self.run_dir.root / WARM_START_DIR / "train.json").exists():
            return
        researcher = self._researcher(self.config.policy, 0)
        if self.config.heldout:
            self._heldout_with(self.config.policy, "initial", researcher)
        from ..retrieve import load_references

        references = load_references(Path(self.config.bib)) if self.config.bib else []
        start = time.monotonic()
        run_warm_start(self.run_dir.root, self.config.policy, self.config.warm_start,
                       self.config.warm_start_examples, researcher, references, self.config.research.task,
                       self.config.sft, self.config.simpo.max_prompt_length)
        del researcher
        _release_models()
        log.info("warm start done in %.0f s; peak RSS %.0f MB", time.monotonic() - start, peak_rss_mb())

    def run_round(self, r: int) -> RoundMetrics:
        rdir = self.run_dir.round_dir(r)
        rdir.mkdir(parents=True, exist_ok=True)
        seconds: dict[str, float] = {}
        tokens: dict[str, int] = {}
        spec = self.policy_spec(r)
        log.info("round %d: policy %s", r, spec)

        start = time.monotonic()
        researcher = self._researcher(spec, r)
        policy = researcher.backend
        prompts = self.prompts(researcher)
        by_id = {p["id"]: p for p in prompts}
        ids = round_prompts(self.split(prompts)[0], self.config.prompts_per_round, self.config.seed, r)
        papers = self._sample(r, researcher, [by_id[i] for i in ids])
        if self.config.heldout and not self.heldout.done(f"r{r:02d}"):
            held = self.split(prompts)[1]
            self.heldout.sample(f"r{r:02d}", researcher, [by_id[i] for i in held], self.config.heldout_samples,
                                seed=self.config.seed * 1000 + 777, batch=self.config.prompt_batch)
        seconds["research"] = round(time.monotonic() - start, 3)
        log.info("round %d: sampled %d papers in %.0f s; peak RSS %.0f MB", r, len(papers), seconds["research"],
                 peak_rss_mb())
        usage = policy.usage.stages.get("research")
        tokens["research"] = usage.tokens if usage is not None else 0
        del researcher, policy
        _release_models()

        start = time.monotonic()
        rewards, failures, review_tokens = self._review(r, papers)
        if self.config.heldout:
            self._heldout_with(spec, f"r{r:02d}")  # sampled above: only judged here
        seconds["review"] = round(time.monotonic() - start, 3)
        tokens["review"] = review_tokens

        pairs = select_pairs(papers, rewards, self.config.min_margin)
        write_jsonl_atomic(self.run_dir.file(r, "pairs.jsonl"), [p.to_dict() for p in pairs])
        start = time.monotonic()
        train_metrics = self._train(r, spec, pairs)
        seconds["train"] = round(time.monotonic() - start, 3)
        log.info("round %d: trained in %.0f s; peak RSS %.0f MB", r, seconds["train"], peak_rss_mb())
        _release_models()

        values = [v for v in rewards.values() if v is not None]
        m = RoundMetrics(round=r, n_prompts=len(ids), n_papers=len(papers), n_reviewed=len(values),
                         n_pairs=len(pairs), losses=list(train_metrics.get("losses", [])),
                         mean_margin=(sum(p.margin for p in pairs) / len(pairs)) if pairs else None,
                         train_metrics={k: v for k, v in train_metrics.items() if k != "losses"},
                         tokens=tokens, seconds=seconds, parse_failures=failures,
                         **RoundMetrics.reward_stats(values))
        write_json_atomic(self.run_dir.file(r, "metrics.json"), m.to_dict())
        log.info("round %d done: mean reward %s, %d pairs", r, m.mean_reward, m.n_pairs)
        return m

    def _sample(self, r: int, researcher: Researcher, prompts: list[dict]) -> list[Paper]:
        path = self.run_dir.file(r, "papers.jsonl")
        papers = [Paper.from_dict(d) for d in read_jsonl(path)]
        have = {(p.prompt_id, p.sample_index) for p in papers}
        todo = [p for p in prompts if any((p["id"], k) not in have for k in range(self.config.samples))]
        batches = [todo[i:i + self.config.prompt_batch] for i in range(0, len(todo), self.config.prompt_batch)]
        for batch in _progress(batches, f"round {r}: sampling", self.progress):
            rows = researcher.sample([p["messages"] for p in batch], self.config.samples,
                                     seed=self.config.seed * 1000 + r * 100 + prompts.index(batch[0]))
            new = []
            for prompt, row in zip(batch, rows):
                for paper in row:
                    if (prompt["id"], paper.sample_index) in have:
                        continue
                    paper.prompt_id = prompt["id"]
                    paper.topic = prompt["topic"]
                    paper.paper_id = f"r{r:02d}-{prompt['id']}-s{paper.sample_index}"
                    new.append(paper)
            append_jsonl(path, [p.to_dict() for p in new])
            papers.extend(new)
        return papers

    def _review(self, r: int, papers: list[Paper]) -> tuple[dict[str, Optional[float]], int, int]:
        path = self.run_dir.file(r, "reviews.jsonl")
        done = {row["paper_id"]: row for row in read_jsonl(path)}
        todo = [p for p in papers if p.paper_id not in done]
        judge = self.reward if todo else None
        backend = judge.backend if judge is not None else None
        if backend is not None:
            backend.budget = self.budget
        before = backend.usage.total_tokens if backend is not None else 0
        batches = [todo[i:i + self.config.review_batch] for i in range(0, len(todo), self.config.review_batch)]
        for batch in _progress(batches, f"round {r}: reviewing", self.progress):
            verdicts = judge.score(batch)
            if self.config.penalize_noncompliant:
                for paper, verdict in zip(batch, verdicts):
                    penalize_noncompliant(paper, verdict, self.config.research.task, judge.min_score)
            rows = [{"paper_id": paper.paper_id, "prompt_id": paper.prompt_id, "reward": verdict.score,
                     "reward_source": judge.spec, "verdict": verdict.to_dict()}
                    for paper, verdict in zip(batch, verdicts)]
            append_jsonl(path, rows)
            done.update({row["paper_id"]: row for row in rows})
        spent = (backend.usage.total_tokens - before) if backend is not None else 0
        rewards = {pid: row["reward"] for pid, row in done.items()}
        failures = sum(1 for p in papers if rewards.get(p.paper_id) is None)
        return rewards, failures, spent

    def _train(self, r: int, spec: str, pairs: list[PreferencePair]) -> dict:
        final = self.run_dir.checkpoint(r)
        done_marker = self.run_dir.file(r, "train.json")
        if final.exists() and done_marker.exists():
            return read_json(done_marker)
        if not pairs:
            log.warning("round %d: no preference pairs (rewards missing or tied); the policy is unchanged", r)
            result = {"skipped": "no pairs", "losses": []}
        else:
            simpo = dataclasses.replace(self.config.simpo, seed=self.config.simpo.seed + self.config.seed + r)
            tmp = self.run_dir.round_dir(r) / "checkpoint.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            result = self.trainer(spec.removeprefix("hf:"), pairs, tmp, simpo)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        write_json_atomic(done_marker, result)
        return result


def penalize_noncompliant(paper: Paper, verdict: Verdict, task: str, min_score: float) -> None:
    """A sample that lacks a stage its task asks for gets `min_score`, as a flagged one does: a reward model
    reads text and may rank a half-answer above a whole one, and the loop must not teach the policy to drop
    the format it was asked for. The score it would have had stays in `unpenalized_score`."""
    missing = compliance_problems(paper, task)
    if missing and not verdict.penalized and verdict.score is not None:
        penalize(verdict, min_score, f"not compliant with task {task!r}, missing {'; '.join(missing)}")


def _with_options(spec: str, options: str) -> str:
    """`local` + `dtype=bfloat16` -> `local?dtype=bfloat16`; `hf:PATH` -> `hf:PATH?dtype=bfloat16`."""
    if not options:
        return spec
    return f"{spec}{'&' if '?' in spec else '?'}{options.lstrip('?')}"


def _progress(items: list, label: str, enabled: bool):
    if not enabled or not items:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="batch")


def _release_models() -> None:
    """Free cached models between stages so that one round holds one policy copy at a time."""
    from ..backends import release_models

    release_models()
    log.info("models released; peak RSS so far %.0f MB", peak_rss_mb())


def run_cycle(out: Path, config: Optional[CycleConfig] = None, resume: bool = False, **kwargs) -> list[RoundMetrics]:
    """Create or resume the run at `out` and finish it."""
    return Cycle.open(out, config, resume=resume, **kwargs).run()
