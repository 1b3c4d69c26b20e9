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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from ..backends.base import Backend, Budget
from ..config import ConfigError, StrictConfig
from ..errors import InputError
from ..io import append_jsonl, peak_rss_mb, read_json, read_jsonl, write_json_atomic, write_jsonl_atomic
from ..judges import Judge
from ..research import ResearchConfig, Researcher
from ..review import ReviewConfig
from ..schema import Paper, PreferencePair, RoundMetrics
from .rundir import RunDir, load_prompt_file
from .simpo_config import SimPOConfig

log = logging.getLogger(__name__)

# What a resumed run may change: how far it goes and what it may spend. Everything else (models, prompts,
# sampling, reward) would make the rounds already on disk incomparable with the new ones.
RESUMABLE_CHANGES = ("rounds", "max_tokens", "max_seconds")


@dataclass
class CycleConfig(StrictConfig):
    """What a run asks for. Saved as config.yaml; unknown keys and wrong types are errors."""

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
    research: ResearchConfig = field(default_factory=lambda: ResearchConfig(
        max_new_tokens=768, temperature=0.4, top_p=0.95, top_k_references=4), metadata={"help": "ResearchConfig"})
    review: ReviewConfig = field(default_factory=lambda: ReviewConfig(n_reviewers=4, max_new_tokens=1024),
                                 metadata={"help": "ReviewConfig (reviewer backends only)"})
    simpo: SimPOConfig = field(default_factory=SimPOConfig, metadata={"help": "SimPOConfig"})
    seed: int = field(default=0, metadata={"help": "seed of prompt draws and sampling (per round: seed + round)"})
    max_tokens: Optional[int] = field(default=None, metadata={"help": "token budget of the whole run"})
    max_seconds: Optional[float] = field(default=None, metadata={"help": "time budget of this invocation (s)"})

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.samples < 2:
            raise ConfigError(f"need rounds >= 1 and samples >= 2 (a pair needs two papers); got "
                              f"rounds={self.rounds}, samples={self.samples}")
        for name in ("prompt_batch", "review_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        # Mappings given directly (not through from_dict) become typed configs too.
        for name, cls in (("research", ResearchConfig), ("review", ReviewConfig), ("simpo", SimPOConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, cls.from_dict(value))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "CycleConfig":
        """A packaged preset (tiny, demo, gpu-8b) with top-level keys overridden."""
        data = preset_dict(name)
        data.update(overrides)
        return cls.from_dict(data)


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in (resources.files("cycleresearcher") / "presets").iterdir()
                  if p.name.endswith(".yaml"))


def preset_dict(name: str) -> dict[str, Any]:
    """The mapping a packaged preset holds (see src/cycleresearcher/presets/*.yaml)."""
    path = (resources.files("cycleresearcher") / "presets") / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; the presets are: {', '.join(preset_names())}")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


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


def resume_config(saved: CycleConfig, given: Optional[CycleConfig]) -> CycleConfig:
    """The saved config with the changes a resume may make (RESUMABLE_CHANGES); any other change is an error."""
    if given is None:
        return saved
    old, new = dataclasses.asdict(saved), dataclasses.asdict(given)
    refused = sorted(k for k in old if old[k] != new[k] and k not in RESUMABLE_CHANGES)
    if refused:
        raise ConfigError(f"a resumed run keeps its saved config; these options differ from it: {', '.join(refused)}"
                          f" (only {', '.join(RESUMABLE_CHANGES)} may change on --resume)",
                          hint="leave them out, or start a new run in another --out")
    return dataclasses.replace(saved, **{k: new[k] for k in RESUMABLE_CHANGES})


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
                metrics.append(RoundMetrics.from_dict(read_json(self.run_dir.file(r, "metrics.json"))))
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
        researcher = Researcher(policy, dataclasses.replace(self.config.research, seed=self.config.seed + r))
        prompts = self.prompts(researcher)
        by_id = {p["id"]: p for p in prompts}
        ids = round_prompts(list(by_id), self.config.prompts_per_round, self.config.seed, r)
        papers = self._sample(r, researcher, [by_id[i] for i in ids])
        seconds["research"] = round(time.monotonic() - start, 3)
        log.info("round %d: sampled %d papers in %.0f s; peak RSS %.0f MB", r, len(papers), seconds["research"],
                 peak_rss_mb())
        usage = policy.usage.stages.get("research")
        tokens["research"] = usage.tokens if usage is not None else 0
        del researcher, policy
        _release_models()

        start = time.monotonic()
        rewards, failures, review_tokens = self._review(r, papers)
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
            rows = [{"paper_id": paper.paper_id, "prompt_id": paper.prompt_id, "reward": verdict.score,
                     "reward_source": judge.spec, "verdict": verdict.to_dict()}
                    for paper, verdict in zip(batch, judge.score(batch))]
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


def cycle_config_from_options(out: Path, preset: Optional[str] = None, config_file: Optional[Path] = None,
                              resume: bool = False, flat: Optional[dict[str, Any]] = None,
                              nested: Optional[dict[str, dict[str, Any]]] = None) -> Optional[CycleConfig]:
    """The config the `cycle` command asks for: defaults < preset < --config file < the flags given.

    Options left as None are not given. On --resume only the options given are compared with the saved config
    (see `resume_config`); None means "the saved config as it is"."""
    flat = {k: v for k, v in (flat or {}).items() if v is not None}
    nested = {name: {k: v for k, v in values.items() if v is not None} for name, values in (nested or {}).items()}
    nested = {k: v for k, v in nested.items() if v}
    if resume:
        saved = RunDir(Path(out)).read_config()
        if saved is None:
            raise InputError(f"nothing to resume: {RunDir(Path(out)).config_path} does not exist")
        if not (flat or nested or preset or config_file):
            return None
        data = _layer(saved, preset, config_file, flat, nested)
        return CycleConfig.from_dict(data)
    if not (flat.get("prompts_file") or preset or config_file):
        raise InputError("a new run needs --prompts (or --preset / --config with a prompts_file)")
    data = _layer({}, preset, config_file, flat, nested)
    if not data.get("prompts_file"):
        raise InputError("a new run needs --prompts (the preset and config name no prompts_file)")
    if "review" in nested and "n_reviewers" in nested["review"] and "max_new_tokens" not in nested["review"]:
        # Room for every review of one paper plus the meta-review (about 256 tokens each).
        nested["review"]["max_new_tokens"] = 256 * nested["review"]["n_reviewers"] + 256
        data["review"] = {**data.get("review", {}), **nested["review"]}
    return CycleConfig.from_dict(data)


def _layer(base: dict[str, Any], preset: Optional[str], config_file: Optional[Path], flat: dict[str, Any],
           nested: dict[str, dict[str, Any]]) -> dict[str, Any]:
    data = dict(base)
    layers = []
    if preset:
        layers.append(preset_dict(preset))
    if config_file is not None:
        config_file = Path(config_file)
        if not config_file.is_file():
            raise InputError(f"config file not found: {config_file}")
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(f"{config_file} is not a YAML config: {' '.join(str(exc).split())}") from exc
        if not isinstance(loaded, dict):
            raise InputError(f"{config_file} must hold a mapping of CycleConfig keys")
        layers.append(loaded)
    layers.append({**flat, **nested})
    for layer in layers:
        for key, value in layer.items():
            if key in ("research", "review", "simpo") and isinstance(value, dict):
                current = data.get(key)
                data[key] = {**(current if isinstance(current, dict) else {}), **value}
            else:
                data[key] = value
    return data
