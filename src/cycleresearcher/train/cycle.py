"""The CycleResearcher loop: sample papers, review them, pair best against worst, train SimPO + NLL, repeat.

    cycleresearcher cycle --rounds 2 --samples 3 --prompts ../shared/data/topics.txt \\
        --bib ../shared/data/sample.bib --policy local --reviewer local --out runs/tiny

Every step appends to the run directory (DESIGN.md) as soon as it finishes, so a crash or `kill -9` loses at
most the batch in flight, and `--resume` picks up where the run stopped:

    runs/<name>/config.yaml            the resolved config (a resumed run uses it, not new flags)
    runs/<name>/prompts.jsonl          the prompts (topic, messages) every round samples from
    runs/<name>/round-00/papers.jsonl  one Paper per line (prompt id, sample index)
    runs/<name>/round-00/reviews.jsonl one line per paper: reward and the ReviewSet (or scalar score)
    runs/<name>/round-00/pairs.jsonl   PreferencePairs (highest vs lowest reward per prompt)
    runs/<name>/round-00/checkpoint/   policy after this round (renamed into place when complete)
    runs/<name>/round-00/metrics.json  written last: its presence marks the round done
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from ..backends.base import Backend, Budget
from ..research import ResearchConfig, Researcher, atomic_write
from ..review import ReviewConfig, Reviewer
from ..schema import Paper, PreferencePair, ReviewSet, RoundMetrics
from .simpo_config import SimPOConfig

log = logging.getLogger(__name__)


@dataclass
class CycleConfig:
    """What a run asks for. Saved as config.yaml; unknown keys are errors."""

    policy: str = field(default="local", metadata={"help": "policy backend spec for round 0 (local, hf:PATH)"})
    policy_options: str = field(default="", metadata={
        "help": "backend options for sampling from the policy, e.g. dtype=bfloat16 (faster batched sampling on "
                "CPUs with bf16 matmuls); training always loads float32"})
    reviewer: str = field(default="local", metadata={
        "help": "reward: a reviewer backend spec (reward = mean rating of its reviews) or reward:DIR (the "
                "scalar reward model)"})
    prompts_file: str = field(default="", metadata={"help": "topics.txt (one per line) or JSONL {id, topic}"})
    bib: str = field(default="", metadata={"help": "BibTeX (or JSONL/folder) of references for the prompts"})
    rounds: int = field(default=2, metadata={"help": "training rounds"})
    samples: int = field(default=3, metadata={"help": "papers sampled per prompt per round (K; paper: 3)"})
    prompts_per_round: int = field(default=0, metadata={
        "help": "prompts used each round, drawn without replacement per round (0: all; paper: about a third)"})
    max_prompts: int = field(default=0, metadata={"help": "use only the first N prompts of the file (0: all)"})
    min_margin: float = field(default=0.0, metadata={"help": "drop pairs whose reward margin is not above this"})
    prompt_batch: int = field(default=4, metadata={"help": "prompts per generation call (a resume unit)"})
    review_batch: int = field(default=4, metadata={"help": "papers per review call (a resume unit)"})
    research: dict = field(default_factory=lambda: {"max_new_tokens": 768, "temperature": 0.4, "top_p": 0.95,
                                                    "top_k_references": 4},
                           metadata={"help": "ResearchConfig fields"})
    review: dict = field(default_factory=lambda: {"n_reviewers": 4, "max_new_tokens": 1024},
                         metadata={"help": "ReviewConfig fields (reviewer backends only)"})
    simpo: dict = field(default_factory=dict, metadata={"help": "SimPOConfig fields"})
    seed: int = field(default=0, metadata={"help": "seed of prompt draws and sampling (per round: seed + round)"})
    max_tokens: Optional[int] = field(default=None, metadata={"help": "token budget of the whole run"})
    max_seconds: Optional[float] = field(default=None, metadata={"help": "time budget of this invocation (s)"})

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.samples < 2:
            raise ValueError(f"need rounds >= 1 and samples >= 2 (a pair needs two papers); got rounds={self.rounds}, "
                             f"samples={self.samples}")
        ResearchConfig(**self.research)  # unknown keys fail here, before any work
        ReviewConfig(**self.review)
        SimPOConfig.from_dict(self.simpo) if self.simpo else SimPOConfig()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CycleConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown cycle config keys: {sorted(unknown)}")
        return cls(**data)


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


# ---- run directory ---------------------------------------------------------------------------------------

def read_jsonl(path: Path) -> list[dict]:
    """Lines of a JSONL file; a last line cut off by a crash is ignored."""
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n < len(lines) - 2:
                raise ValueError(f"{path}:{n + 1} is not JSON (the file is damaged, not just cut off)") from None
            log.warning("%s: ignoring a last line cut off by a crash", path)
    return rows


def append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append whole lines and fsync, so a kill loses at most the lines not yet appended."""
    if not rows:
        return
    _repair_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _repair_tail(path: Path) -> None:
    """Drop a partial last line left by a crash before appending after it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(cut)


@dataclass
class RunDir:
    root: Path

    def round_dir(self, r: int) -> Path:
        return self.root / f"round-{r:02d}"

    def done(self, r: int) -> bool:
        return (self.round_dir(r) / "metrics.json").exists()

    def checkpoint(self, r: int) -> Path:
        return self.round_dir(r) / "checkpoint"


def load_prompt_file(path: Path) -> list[dict]:
    """[{id, topic}] from topics.txt (one topic per line, # comments) or JSONL with a topic field."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"prompts file not found: {path}")
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
        out = []
        for n, row in enumerate(rows):
            if not isinstance(row, dict) or not row.get("topic"):
                raise ValueError(f"{path}:{n + 1}: each line needs a 'topic'")
            out.append({"id": str(row.get("id", f"p{n:03d}")), "topic": str(row["topic"])})
        return out
    topics = [t.strip() for t in path.read_text(encoding="utf-8").splitlines()]
    topics = [t for t in topics if t and not t.startswith("#")]
    if not topics:
        raise ValueError(f"{path} holds no topics")
    return [{"id": f"p{n:03d}", "topic": t} for n, t in enumerate(topics)]


# ---- rewards ---------------------------------------------------------------------------------------------

class RewardSource:
    """Scores papers: `score(papers) -> [(reward or None, record dict)]`."""

    spec: str = ""
    backend: Optional[Backend] = None

    def score(self, papers: list[Paper]) -> list[tuple[Optional[float], dict]]:
        raise NotImplementedError


class ReviewerReward(RewardSource):
    """Reward = mean rating of the reviewer's N reviews (None when no review has a rating)."""

    def __init__(self, backend: Backend, config: ReviewConfig) -> None:
        self.backend = backend
        self.spec = backend.spec
        self.reviewer = Reviewer(backend, config=config)

    def score(self, papers):
        sets = self.reviewer.review_many(papers)
        return [(rs.mean_rating, {"review_set": rs.to_dict()}) for rs in sets]


class ScalarReward(RewardSource):
    """Reward = the scalar reward model's predicted mean rating."""

    def __init__(self, model_dir: Path) -> None:
        from ..reward import RewardModel

        self.spec = f"reward:{model_dir}"
        self.model = RewardModel.load(Path(model_dir))

    def score(self, papers):
        return [(s["reward"], {"scalar": s}) for s in self.model.score(papers)]


def make_reward(spec: str, review_config: ReviewConfig) -> RewardSource:
    if spec.startswith("reward:"):
        return ScalarReward(Path(spec.partition(":")[2]))
    from ..backends import get_backend

    return ReviewerReward(get_backend(spec), review_config)


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
                 reward: Optional[RewardSource] = None, trainer: Trainer = _default_trainer,
                 progress: bool = False) -> None:
        self.run_dir = RunDir(Path(out))
        self.config = config
        self.policy_factory = policy_factory
        self._reward = reward
        self.trainer = trainer
        self.progress = progress
        self.budget = Budget(max_tokens=config.max_tokens, max_seconds=config.max_seconds)

    # -- setup
    @classmethod
    def open(cls, out: Path, config: Optional[CycleConfig] = None, resume: bool = False, **kwargs) -> "Cycle":
        """A new run (refuses a non-empty folder unless resuming) or the saved run at `out`."""
        out = Path(out)
        saved = out / "config.yaml"
        if resume:
            if not saved.exists():
                raise FileNotFoundError(f"nothing to resume: {saved} does not exist")
            loaded = CycleConfig.from_dict(yaml.safe_load(saved.read_text(encoding="utf-8")))
            if config is not None and dataclasses.asdict(config) != dataclasses.asdict(loaded):
                log.warning("resuming with the saved config.yaml; the options given now are ignored")
            return cls(out, loaded, **kwargs)
        if config is None:
            raise ValueError("a new run needs a config")
        if saved.exists():
            raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(saved, yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
        return cls(out, config, **kwargs)

    @property
    def reward(self) -> RewardSource:
        if self._reward is None:
            self._reward = make_reward(self.config.reviewer, ReviewConfig(**self.config.review))
        return self._reward

    def prompts(self, researcher: Researcher) -> list[dict]:
        """The prompts every round samples from, built once and saved (prompts.jsonl)."""
        path = self.run_dir.root / "prompts.jsonl"
        if path.exists():
            return read_jsonl(path)
        from ..retrieve import load_references

        if not self.config.prompts_file:
            raise ValueError("the cycle needs a prompts file (--prompts)")
        topics = load_prompt_file(Path(self.config.prompts_file))
        if self.config.max_prompts:
            topics = topics[: self.config.max_prompts]
        references = load_references(Path(self.config.bib)) if self.config.bib else []
        rows = [{"id": t["id"], "topic": t["topic"], "messages": researcher.prompt(t["topic"], references)}
                for t in topics]
        atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return rows

    def policy_spec(self, r: int) -> str:
        """Round r samples from the last checkpoint written before it, or the initial policy."""
        for prev in range(r - 1, -1, -1):
            if self.run_dir.checkpoint(prev).exists():
                return f"hf:{self.run_dir.checkpoint(prev)}"
        return self.config.policy

    # -- running
    def run(self) -> list[RoundMetrics]:
        metrics = []
        for r in range(self.config.rounds):
            if self.run_dir.done(r):
                metrics.append(RoundMetrics.from_dict(json.loads(
                    (self.run_dir.round_dir(r) / "metrics.json").read_text(encoding="utf-8"))))
                continue
            metrics.append(self.run_round(r))
        return metrics

    def run_round(self, r: int) -> RoundMetrics:
        rdir = self.run_dir.round_dir(r)
        rdir.mkdir(parents=True, exist_ok=True)
        seconds: dict[str, float] = {}
        tokens: dict[str, int] = {}
        spec = self.policy_spec(r)
        log.info("round %d: policy %s", r, spec)

        start = time.monotonic()
        policy = self.policy_factory(_with_options(spec, self.config.policy_options))
        policy.budget = self.budget
        researcher = Researcher(policy, ResearchConfig(**{**self.config.research, "seed": self.config.seed + r}))
        prompts = self.prompts(researcher)
        by_id = {p["id"]: p for p in prompts}
        ids = round_prompts(list(by_id), self.config.prompts_per_round, self.config.seed, r)
        papers = self._sample(r, researcher, [by_id[i] for i in ids])
        seconds["research"] = round(time.monotonic() - start, 3)
        log.info("round %d: sampled %d papers in %.0f s; peak RSS %.0f MB", r, len(papers), seconds["research"],
                 _peak_rss_mb())
        tokens["research"] = policy.usage.stages.get("research").tokens if "research" in policy.usage.stages else 0
        del researcher, policy
        _release_models()

        start = time.monotonic()
        rewards, failures, review_tokens = self._review(r, papers)
        seconds["review"] = round(time.monotonic() - start, 3)
        tokens["review"] = review_tokens

        pairs = select_pairs(papers, rewards, self.config.min_margin)
        atomic_write(rdir / "pairs.jsonl", "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n"
                                                   for p in pairs))
        start = time.monotonic()
        train_metrics = self._train(r, spec, pairs)
        seconds["train"] = round(time.monotonic() - start, 3)
        log.info("round %d: trained in %.0f s; peak RSS %.0f MB", r, seconds["train"], _peak_rss_mb())
        _release_models()

        values = [v for v in rewards.values() if v is not None]
        m = RoundMetrics(round=r, n_prompts=len(ids), n_papers=len(papers), n_reviewed=len(values),
                         n_pairs=len(pairs), losses=list(train_metrics.get("losses", [])),
                         mean_margin=(sum(p.margin for p in pairs) / len(pairs)) if pairs else None,
                         train_metrics={k: v for k, v in train_metrics.items() if k != "losses"},
                         tokens=tokens, seconds=seconds, parse_failures=failures,
                         **RoundMetrics.reward_stats(values))
        atomic_write(rdir / "metrics.json", json.dumps(m.to_dict(), indent=2))
        log.info("round %d done: mean reward %s, %d pairs", r, m.mean_reward, m.n_pairs)
        return m

    def _sample(self, r: int, researcher: Researcher, prompts: list[dict]) -> list[Paper]:
        path = self.run_dir.round_dir(r) / "papers.jsonl"
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
        path = self.run_dir.round_dir(r) / "reviews.jsonl"
        done = {row["paper_id"]: row for row in read_jsonl(path)}
        todo = [p for p in papers if p.paper_id not in done]
        reward = self.reward if todo else None
        if reward is not None and reward.backend is not None:
            reward.backend.budget = self.budget
        before = reward.backend.usage.total_tokens if reward is not None and reward.backend is not None else 0
        batches = [todo[i:i + self.config.review_batch] for i in range(0, len(todo), self.config.review_batch)]
        for batch in _progress(batches, f"round {r}: reviewing", self.progress):
            rows = []
            for paper, (value, record) in zip(batch, reward.score(batch)):
                rows.append({"paper_id": paper.paper_id, "prompt_id": paper.prompt_id, "reward": value,
                             "reward_source": reward.spec, **record})
            append_jsonl(path, rows)
            done.update({row["paper_id"]: row for row in rows})
        spent = (reward.backend.usage.total_tokens - before) if reward is not None and reward.backend is not None else 0
        rewards = {pid: row["reward"] for pid, row in done.items()}
        failures = sum(1 for p in papers if rewards.get(p.paper_id) is None)
        return rewards, failures, spent

    def _train(self, r: int, spec: str, pairs: list[PreferencePair]) -> dict:
        final = self.run_dir.checkpoint(r)
        done_marker = self.run_dir.round_dir(r) / "train.json"
        if final.exists() and done_marker.exists():
            return json.loads(done_marker.read_text(encoding="utf-8"))
        if not pairs:
            log.warning("round %d: no preference pairs (rewards missing or tied); the policy is unchanged", r)
            result = {"skipped": "no pairs", "losses": []}
        else:
            simpo = SimPOConfig.from_dict({**{"seed": self.config.seed + r}, **self.config.simpo})
            tmp = self.run_dir.round_dir(r) / "checkpoint.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            result = self.trainer(spec.removeprefix("hf:"), pairs, tmp, simpo)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        atomic_write(done_marker, json.dumps(result, indent=2, default=str))
        return result


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
    from ..backends.base import release_backends
    from ..backends.hf import load_causal_lm

    release_backends("hf:")
    load_causal_lm.cache_clear()
    gc.collect()
    try:  # give freed heap pages back to the OS, so the next stage's peak does not stack on this one's
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    log.info("models released; peak RSS so far %.0f MB", _peak_rss_mb())


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_cycle(out: Path, config: Optional[CycleConfig] = None, resume: bool = False, **kwargs) -> list[RoundMetrics]:
    """Create or resume the run at `out` and finish it."""
    return Cycle.open(out, config, resume=resume, **kwargs).run()
