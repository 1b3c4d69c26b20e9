"""CycleConfig, the packaged presets, and the `cycle` command's layering of defaults, preset, file and flags.

    CycleConfig.preset("tiny", prompts_file="topics.txt")     # src/cycleresearcher/presets/tiny.yaml
    cycleresearcher cycle --preset gpu-8b --prompts prompts.jsonl --out runs/big
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import yaml

from ..config import ConfigError, StrictConfig
from ..errors import InputError
from ..research import ResearchConfig
from ..review import ReviewConfig
from .rundir import RunDir
from .sft_config import SFTConfigLite
from .simpo_config import SimPOConfig

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
    penalize_noncompliant: bool = field(default=True, metadata={
        "help": "a sample missing a stage its task asks for gets the reward's minimum (recorded), so the pairs "
                "teach the format the prompt asks for; off: the reward model alone decides"})
    prompt_batch: int = field(default=4, metadata={"help": "prompts per generation call (a resume unit)"})
    review_batch: int = field(default=4, metadata={"help": "papers per review call (a resume unit)"})
    research: ResearchConfig = field(default_factory=lambda: ResearchConfig(
        max_new_tokens=768, temperature=0.4, top_p=0.95, top_k_references=4), metadata={"help": "ResearchConfig"})
    review: ReviewConfig = field(default_factory=lambda: ReviewConfig(n_reviewers=4, max_new_tokens=1024),
                                 metadata={"help": "ReviewConfig (reviewer backends only)"})
    simpo: SimPOConfig = field(default_factory=SimPOConfig, metadata={"help": "SimPOConfig"})
    heldout: int = field(default=0, metadata={
        "help": "prompts kept out of training; the policy of every round writes papers for them and `judge` "
                "scores those (0: no held-out evaluation)"})
    heldout_samples: int = field(default=2, metadata={"help": "papers per held-out prompt per evaluation"})
    judge: str = field(default="", metadata={
        "help": "the independent judge of the held-out papers: reward:DIR or a reviewer backend spec; it should "
                "not be the training reward (empty: the training reward, with a warning)"})
    warm_start: str = field(default="", metadata={
        "help": "a dataset source (e.g. ../shared/data/reviews_real/reviews.jsonl) whose best papers, written as "
                "answers to the run's prompt, train the policy (SFT) before round 0 (empty: no warm start)"})
    warm_start_examples: int = field(default=64, metadata={"help": "papers in the warm start"})
    sft: SFTConfigLite = field(default_factory=lambda: SFTConfigLite(lora=True, epochs=1, batch_size=4,
                                                                     max_length=1024),
                               metadata={"help": "SFTConfigLite of the warm start"})
    seed: int = field(default=0, metadata={"help": "seed of prompt draws and sampling (per round: seed + round)"})
    max_tokens: Optional[int] = field(default=None, metadata={"help": "token budget of the whole run"})
    max_seconds: Optional[float] = field(default=None, metadata={"help": "time budget of this invocation (s)"})

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.samples < 2:
            raise ConfigError(f"need rounds >= 1 and samples >= 2 (a pair needs two papers); got "
                              f"rounds={self.rounds}, samples={self.samples}")
        if self.heldout < 0 or self.heldout_samples < 1 or self.warm_start_examples < 1:
            raise ConfigError("heldout must be >= 0, heldout_samples and warm_start_examples >= 1")
        for name in ("prompt_batch", "review_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        # Mappings given directly (not through from_dict) become typed configs too.
        for name, cls in (("research", ResearchConfig), ("review", ReviewConfig), ("simpo", SimPOConfig),
                          ("sft", SFTConfigLite)):
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
            if key in ("research", "review", "simpo", "sft") and isinstance(value, dict):
                current = data.get(key)
                data[key] = {**(current if isinstance(current, dict) else {}), **value}
            else:
                data[key] = value
    return data
