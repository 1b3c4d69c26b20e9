"""The scalar reward model: a linear ranker over what a paper says and how it is built, with a guard against
degenerate text and a calibrated accept head.

    model = RewardModel.train(rows)                 # rows: title, abstract, text, ratings, decision, group
    model.score(["# Title\\n\\n## Abstract ..."])    # [{"reward": 5.9, "accept_prob": 0.31, "percentile": 0.62, ...}]
    model.save(Path("runs/reward")); RewardModel.load(Path("runs/reward"))

Every text goes through `text.clean_paper_text` (camera-ready cues out, appendix cut). Features: the mean of
MiniLM embeddings of chunks spread over the whole paper and how coherent those chunks are, structure counts
(sections, math, tables, figures, theorems, citations, experiments with numbers) and integrity statistics
(repetition, compressibility, common word pairs, sentence cohesion); see features.py. The ranker is trained
within venue-year groups only (fit.py), so rating scales and accept rates of different venues never mix.

An accept head (a logistic regression on the structure, integrity and length features of the papers that have
decisions, in groups holding both) is added to the ranker's score with weight `accept_weight`: the ranker alone
learns what reviewers rate higher among papers of one group but not what separates rejected papers (NeurIPS
2023 5-fold: Spearman 0.29, accept AUC 0.53); with the head, 0.22 and 0.74 (length alone: 0.08 and 0.74).

Scoring: z = standardised ranker score, minus the guard penalty (integrity statistics beyond the 1st/99th
percentile of real papers cost `guard_weight` per scale unit, so word salad, shuffled sentences and repeated or
padded text fall whatever the embedding says) and, for generated papers, a penalty per missing
CycleResearcher stage. `reward` maps z onto the 1-10 mean-rating scale through matched quantiles of the
training papers; `accept_prob` is a logistic head fitted on the decisions, shifted to a prior accept rate
(opt-in rejects make the data's own rates meaningless). A paper the injection finder flags gets reward 1.
"""

from __future__ import annotations

import functools
import hashlib
import io as _bytes_io
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from ..embed import DIM, EMBEDDING_MODEL, embed_chunks
from ..errors import InputError
from ..injection import find_injections
from ..io import home, read_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from ..schema import Paper
from .features import (EMBED_STATS, GUARD_DIRECTIONS, INTEGRITY, STRUCTURE, accept_features, clip_lengths,
                       embedding_features, hand_features)
from .text import Item, item_text, model_text, raw_word_count

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.npz"
BIGRAMS_FILE = "bigrams.txt"
FORMAT_VERSION = 2
MIN_REWARD, MAX_REWARD = 1.0, 10.0


class RewardModelError(InputError):
    """A reward model folder is missing, corrupt, from another version or another embedding model."""


@dataclass
class RewardConfig:
    """What the reward model reads and how it is fitted (defaults measured in bench/reward_ablation.py)."""

    embedding_model: str = field(default=EMBEDDING_MODEL, metadata={"help": "embedding model name (checked on load)"})
    chunk_tokens: int = field(default=256, metadata={"help": "tokens per embedded chunk, <= 256"})
    max_chunks: int = field(default=1, metadata={"help": "chunks embedded per paper, spread over the cleaned main "
                                                         "body (the first holds title and abstract)"})
    use_embedding: bool = field(default=True, metadata={"help": "MiniLM chunk embeddings (see embed_pool)"})
    embed_pool: str = field(default="first", metadata={"help": "mean (of all chunks), first (the title and abstract "
                                                               "chunk) or first+mean (both, 768 dims)"})
    use_embed_stats: bool = field(default=False, metadata={"help": "chunk coherence statistics (EMBED_STATS)"})
    use_structure: bool = field(default=False, metadata={"help": "section/math/table/figure/citation counts"})
    use_integrity: bool = field(default=False, metadata={"help": "repetition, cohesion, fluency statistics"})
    use_length: bool = field(default=False, metadata={"help": "log word count of the main body (a structure feature)"})
    objective: str = field(default="pointwise", metadata={"help": "pairwise (logistic on within-group pairs) or "
                                                                 "pointwise (ridge on within-group percentile)"})
    pairs_per_paper: int = field(default=20, metadata={"help": "pairs sampled per paper within its group"})
    min_gap: float = field(default=0.1, metadata={"help": "least within-group percentile gap of a pair"})
    accept_weight: float = field(default=2.0, metadata={
        "help": "weight of the accept head's standardised score added to the rating ranker's (0: ranker alone); "
                "picked on NeurIPS 2023 (5-fold) as the largest Spearman whose accept AUC matches length-only"})
    accept_c: float = field(default=0.01, metadata={"help": "inverse L2 strength of the accept head"})
    length_cap_quantile: float = field(default=0.99, metadata={
        "help": "the accept head's length features are clipped at this quantile of the training papers: "
                "padding past it gains nothing"})
    include_abstract_only: bool = field(default=False, metadata={"help": "train on abstract-only rows too"})
    c_grid: tuple[float, ...] = field(default=(0.0001, 0.0003, 0.001, 0.003, 0.01), metadata={
        "help": "inverse L2 strengths tried; picked on a 20% paper split of the training rows"})
    guard_quantile: float = field(default=0.005, metadata={"help": "integrity values beyond this quantile of real "
                                                                  "papers (each side) are penalised"})
    guard_weight: float = field(default=4.0, metadata={"help": "penalty in score std units per guard scale unit"})
    completeness_weight: float = field(default=0.2, metadata={
        "help": "penalty (score std units) per unit of log word count below the completeness cap: a paper with "
                "sections missing scores lower, padding past the cap gains nothing"})
    completeness_quantile: float = field(default=0.75, metadata={"help": "the cap: this quantile of the training "
                                                                         "papers' log word counts"})
    stage_penalty: float = field(default=0.5, metadata={"help": "penalty (score std units) per missing stage of a "
                                                                "generated paper"})
    accept_rate_prior: float = field(default=0.3, metadata={"help": "mean accept_prob on the training papers"})
    bigram_table: int = field(default=30000, metadata={"help": "common word pairs kept for bigram_hit_rate"})
    seed: int = field(default=0, metadata={"help": "seed of pair sampling and the validation split"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RewardConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise RewardModelError(f"unknown reward config keys {sorted(unknown)}")
        kwargs = dict(data)
        if "c_grid" in kwargs:
            kwargs["c_grid"] = tuple(float(x) for x in kwargs["c_grid"])
        return cls(**kwargs)

    def feature_names(self) -> list[str]:
        names: list[str] = []
        if self.use_embedding:
            for part in self.embed_pool.split("+"):
                names += [f"emb_{part}{i}" for i in range(DIM)]
            names += list(EMBED_STATS) if self.use_embed_stats else []
        if self.use_structure:
            names += [n for n in STRUCTURE if self.use_length or n != "log_words"]
        if self.use_integrity:
            names += list(INTEGRITY)
        return names


def featurize(texts: Sequence[str], cfg: RewardConfig, bigrams: frozenset[str], table_id: str,
              cache_dir: Optional[Path] = None) -> tuple[np.ndarray, np.ndarray]:
    """(model features (n, len(cfg.feature_names())), hand features (n, STRUCTURE + INTEGRITY)) of cleaned
    texts. Hand features are always computed: the guard reads them whatever the config uses. With `cache_dir`
    embeddings are cached there and hand features in its `hand` folder (both keyed by content)."""
    hand = hand_features(texts, bigrams, table_id, cache_dir=Path(cache_dir) / "hand" if cache_dir else None)
    embed_cache = cache_dir
    parts = []
    if cfg.use_embedding:
        chunks = embed_chunks(list(texts), chunk_tokens=cfg.chunk_tokens, max_chunks=cfg.max_chunks,
                              cache_dir=embed_cache, use_cache=embed_cache is not None)
        emb = [embedding_features(c) for c in chunks]
        for part in cfg.embed_pool.split("+"):
            if part == "mean":
                parts.append(np.array([e[0] for e in emb]))
            elif part == "first":
                parts.append(np.array([c[0] for c in chunks], dtype=float))
            else:
                raise RewardModelError(f"unknown embed_pool part {part!r}; use mean, first or first+mean")
        if cfg.use_embed_stats:
            parts.append(np.array([e[1] for e in emb]))
    if cfg.use_structure:
        cols = [i for i, n in enumerate(STRUCTURE) if cfg.use_length or n != "log_words"]
        parts.append(hand[:, cols])
    if cfg.use_integrity:
        parts.append(hand[:, len(STRUCTURE):])
    return np.hstack(parts) if parts else np.zeros((len(texts), 0)), hand


def stage_problems(paper: Paper) -> list[str]:
    """Stages of the CycleResearcher output a generated paper lacks or got inconsistent."""
    missing = []
    if not paper.latex.strip():
        missing.append("no LaTeX paper")
    if not paper.experimental_setup:
        missing.append("no experimental setup")
    if not paper.experimental_results:
        missing.append("no experimental results")
    elif paper.experimental_setup:
        names = {str(e.get("name", "")).strip().lower() for e in paper.experimental_setup}
        got = {str(e.get("name", "")).strip().lower() for e in paper.experimental_results}
        if names != got:
            missing.append("results do not match the setup")
    if not paper.conclusion_latex.strip():
        missing.append("no conclusion")
    return missing


@dataclass
class RewardModel:
    """Linear ranker + guard + accept head; all numbers in `arrays` (see fit.py for how they are made)."""

    config: RewardConfig
    arrays: dict[str, np.ndarray]  # mean, scale, weights, z_grid, rating_grid, train_z, guard_lo, guard_hi, ...
    bigrams: frozenset[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def table_id(self) -> str:
        return str(self.meta.get("bigram_table_id", ""))

    @property
    def rating_range(self) -> tuple[float, float]:
        return MIN_REWARD, MAX_REWARD

    # -- training (fit.py holds the work)
    @classmethod
    def train(cls, rows: Sequence[Mapping[str, Any]], config: Optional[RewardConfig] = None,
              cache_dir: Optional[Path] = None) -> "RewardModel":
        """Fit on dataset rows (title, abstract, text, ratings, decision, group; see data.fulltext)."""
        from .fit import fit_reward_model

        return fit_reward_model(rows, config or RewardConfig(), cache_dir=cache_dir)

    # -- scoring
    def raw_scores(self, x: np.ndarray, xa: Optional[np.ndarray] = None) -> np.ndarray:
        """Standardised score z (mean 0, std 1 on the training papers) of feature rows: the rating ranker plus
        accept_weight x the accept head (when the model has one and `xa`, the accept_features, are given)."""
        a = self.arrays
        s = ((x - a["mean"]) / a["scale"]) @ a["weights"]
        if "rank_gain" in a:  # models before the accept head kept the ranker's raw scale
            s = (s - a["rank_shift"][0]) / a["rank_gain"][0]
        if xa is not None and "acc_weights" in a and self.config.accept_weight:
            s = s + self.config.accept_weight * self.accept_scores(xa)
        return s * a["z_gain"][0] + a["z_shift"][0]

    def accept_scores(self, xa: np.ndarray) -> np.ndarray:
        """The accept head's logit, standardised on the training papers; length columns clipped (fit_accept_head)."""
        a = self.arrays
        xa = clip_lengths(xa, a["acc_floor"], a["acc_cap"])
        return (((xa - a["acc_mean"]) / a["acc_scale"]) @ a["acc_weights"] - a["acc_shift"][0]) / a["acc_gain"][0]

    def guard(self, hand: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
        """Penalty (score std units) and reasons per paper: integrity statistics outside real papers' range, and
        the completeness shortfall (log word count under the cap)."""
        a = self.arrays
        names = list(STRUCTURE) + list(INTEGRITY)
        penalty = np.zeros(len(hand))
        reasons: list[list[str]] = [[] for _ in range(len(hand))]
        cap = a["completeness_cap"][0] if "completeness_cap" in a else None
        if cap is not None and self.config.completeness_weight:
            short = np.maximum(0.0, cap - hand[:, names.index("log_words")])
            penalty += self.config.completeness_weight * short
            for i in np.nonzero(short > 0.7)[0]:  # under half the cap: say so
                reasons[i].append(f"short: {np.expm1(hand[i, names.index('log_words')]):.0f} words")
        for k, (name, direction) in enumerate(GUARD_DIRECTIONS.items()):
            v = hand[:, names.index(name)]
            edge, scale = a["guard_edge"][k], a["guard_scale"][k]
            excess = np.maximum(0.0, direction * (v - edge)) / scale
            penalty += self.config.guard_weight * excess
            for i in np.nonzero(excess > 0)[0]:
                reasons[i].append(f"{name} {v[i]:.3g} beyond real papers' {edge:.3g}")
        return penalty, reasons

    def to_reward(self, z: np.ndarray) -> np.ndarray:
        """z -> the 1-10 mean-rating scale through matched quantiles; linear beyond the ends, clipped to [1, 10]."""
        a = self.arrays
        zg, rg = a["z_grid"], a["rating_grid"]
        out = np.interp(z, zg, rg)
        # Beyond the training range, go on at the slope of the central 80%: the end quantiles of ratings are
        # often flat, and a guarded paper far below every real one must land far below, not at the minimum.
        k = len(zg) // 10
        slope = (rg[-1 - k] - rg[k]) / max(zg[-1 - k] - zg[k], 1e-9)
        out = np.where(z < zg[0], rg[0] + (z - zg[0]) * slope, out)
        out = np.where(z > zg[-1], rg[-1] + (z - zg[-1]) * slope, out)
        return np.clip(out, MIN_REWARD, MAX_REWARD)

    def score(self, items: Sequence[Item], cache_dir: Optional[Path] = None) -> list[dict[str, Any]]:
        """For each paper (text, schema.Paper or dataset row): reward (predicted mean rating, 1-10), accept_prob,
        percentile (share of training papers scoring lower), guard_penalty and its reasons, flags (injections:
        reward 1 and accept_prob 0) and, for generated papers, the missing stages."""
        if isinstance(items, (str, Paper, Mapping)):
            items = [items]  # type: ignore[list-item]
        items = list(items)
        if not items:
            return []
        raw = [item_text(i) for i in items]
        cleaned = [model_text(i) for i in items]
        x, hand = featurize(cleaned, self.config, self.bigrams, self.table_id, cache_dir=cache_dir)
        z = self.raw_scores(x, accept_features(hand, [raw_word_count(i, t) for i, t in zip(items, raw)]))
        penalty, reasons = self.guard(hand)
        stages = [stage_problems(i) if isinstance(i, Paper) else [] for i in items]
        penalty = penalty + self.config.stage_penalty * np.array([len(s) for s in stages], dtype=float)
        zp = z - penalty
        reward = self.to_reward(zp)
        a = self.arrays
        logit = np.clip(a["accept_slope"][0] * zp + a["accept_bias"][0], -50, 50)  # guarded z can be very low
        prob = 1.0 / (1.0 + np.exp(-logit))
        pct = np.searchsorted(a["train_z"], zp) / len(a["train_z"])
        out = []
        for i, item in enumerate(items):
            latex = item.full_latex if isinstance(item, Paper) else ""
            flags = [str(f) for f in find_injections(raw[i], latex)]
            rec = {"reward": float(reward[i]), "accept_prob": float(prob[i]), "percentile": float(pct[i]),
                   "guard_penalty": float(penalty[i]), "guard_reasons": reasons[i], "missing_stages": stages[i],
                   "flags": flags, "penalized": bool(flags)}
            if flags:
                rec.update(unpenalized_reward=rec["reward"], reward=MIN_REWARD, accept_prob=0.0)
            out.append(rec)
        return out

    def reward_of(self, paper: Item) -> float:
        """The reward (predicted mean rating, 1-10) of one paper."""
        return self.score([paper])[0]["reward"]

    # -- files
    def save(self, directory: Path) -> Path:
        """Write model.npz, bigrams.txt and config.json (with both files' sha256) into `directory`."""
        directory = Path(directory)
        buffer = _bytes_io.BytesIO()
        np.savez(buffer, **{k: np.asarray(v, dtype=float) for k, v in self.arrays.items()})
        write_bytes_atomic(directory / WEIGHTS_FILE, buffer.getvalue())
        write_text_atomic(directory / BIGRAMS_FILE, "\n".join(sorted(self.bigrams)) + "\n")
        write_json_atomic(directory / CONFIG_FILE, {
            "format_version": FORMAT_VERSION, "embedding_model": self.config.embedding_model, "embedding_dim": DIM,
            "config": asdict(self.config), "meta": self.meta,
            "sha256": {WEIGHTS_FILE: _sha256(directory / WEIGHTS_FILE), BIGRAMS_FILE: _sha256(directory / BIGRAMS_FILE)}})
        return directory

    @classmethod
    def load(cls, directory: Path) -> "RewardModel":
        """Load a saved model; refuses another format, another embedding model, or files changed after saving."""
        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists():
            raise RewardModelError(f"{directory} is not a reward model folder (no {CONFIG_FILE}); "
                                   "train one with `cycleresearcher reward train --out DIR`")
        try:
            data = read_json(directory / CONFIG_FILE)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RewardModelError(f"{directory / CONFIG_FILE}: not valid JSON: {exc}") from exc
        if data.get("format_version") != FORMAT_VERSION:
            raise RewardModelError(f"{directory}: reward model format {data.get('format_version')!r}, this version "
                                   f"reads {FORMAT_VERSION}; retrain it with `cycleresearcher reward train`")
        if data.get("embedding_model") != EMBEDDING_MODEL or data.get("embedding_dim") != DIM:
            raise RewardModelError(
                f"{directory} was trained on embeddings of {data.get('embedding_model')!r} "
                f"({data.get('embedding_dim')} dims), but this installation embeds with {EMBEDDING_MODEL!r} "
                f"({DIM} dims); retrain it with `cycleresearcher reward train`")
        for name in (WEIGHTS_FILE, BIGRAMS_FILE):
            path = directory / name
            if not path.exists() or _sha256(path) != data.get("sha256", {}).get(name):
                raise RewardModelError(f"{path} is missing or does not match the sha256 in {CONFIG_FILE}")
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        bigrams = frozenset(ln for ln in (directory / BIGRAMS_FILE).read_text(encoding="utf-8").splitlines() if ln)
        return cls(RewardConfig.from_dict(data["config"]), arrays, bigrams, data.get("meta", {}))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


PACKAGED_DIR = Path(__file__).resolve().parent  # models shipped in the package: default/, demo-judge-*/


def default_reward_dir() -> Path:
    """io.home()/reward/default: where `data.reward_training.ensure_default_reward_model` keeps the default model
    (copied from the one shipped in this package, or trained from the shared data)."""
    return home() / "reward" / "default"


def packaged_reward_dir(name: str = "default") -> Optional[Path]:
    """A model shipped inside the package (reward/<name>: the default model, the demo's judge), or None when
    this install has none."""
    folder = PACKAGED_DIR / name
    return folder if (folder / CONFIG_FILE).exists() else None


@functools.lru_cache(maxsize=4)
def _cached(directory: str) -> RewardModel:
    return RewardModel.load(Path(directory))


def reward_of(paper: Item, model: Union[RewardModel, Path, str, None] = None) -> float:
    """The reward of one paper; `model` is a RewardModel or a saved folder (default: default_reward_dir())."""
    if not isinstance(model, RewardModel):
        model = _cached(str(Path(model) if model is not None else default_reward_dir()))
    return model.reward_of(paper)
