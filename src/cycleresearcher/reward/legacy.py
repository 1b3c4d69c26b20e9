"""The fast scalar reward model: paper embedding + cheap features -> predicted mean rating and accept probability.

    cycleresearcher reward train --data data/review --out runs/reward
    cycleresearcher reward score runs/reward paper.tex other.md

    model = RewardModel.train(rows)             # rows: title, abstract, text, mean_rating (or ratings), decision
    model.score(["\\title{...} ..."])           # [{"reward": 5.7, "accept_prob": 0.41}]
    model.save(Path("runs/reward")); RewardModel.load(Path("runs/reward"))

Features: the all-MiniLM-L6-v2 document embedding of title + abstract + text (chunked, mean-pooled; see
embed.py) and, unless `use_length=False`, two cheap ones: log(1 + word count) and log(1 + number of
sections). Length alone predicts decisions surprisingly well on ICLR data, so evaluation reports always show
the length-only baseline beside this model; train with `use_length=False` to see what the text adds.
A ridge regression predicts the mean rating, a logistic regression the accept probability; both are
scikit-learn pipelines with standardised inputs and the regularisation chosen by cross-validation.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from ..embed import DIM, EMBEDDING_MODEL, embed_documents
from ..schema import Paper

log = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1

Item = Union[str, Paper, Mapping[str, Any]]


class RewardModelError(ValueError):
    """A reward model file is missing, corrupt, or was built with another embedding model."""


@dataclass
class RewardConfig:
    """How the reward model turns a paper into features and fits its regressors."""

    embedding_model: str = field(default=EMBEDDING_MODEL, metadata={"help": "embedding model name (checked on load)"})
    chunk_tokens: int = field(default=128, metadata={"help": "tokens per embedded chunk, <= 256"})
    max_chunks: int = field(default=1, metadata={
        "help": "chunks embedded per paper, spread over the text (the first always kept); cost grows linearly. "
                "1 x 128 tokens (title, abstract, opening) ran at 11 papers/s on 2 CPU cores shared at load ~9 "
                "(bench/reward.py)"})
    use_length: bool = field(default=True, metadata={"help": "add log word count and log section count"})
    ridge_alphas: tuple[float, ...] = field(default=(1.0, 10.0, 100.0, 1e3, 3e3, 1e4, 3e4, 1e5),
                                            metadata={"help": "ridge penalties tried by leave-one-out CV"})
    logistic_cs: tuple[float, ...] = field(default=(0.0001, 0.0003, 0.001, 0.003, 0.01, 0.1, 1.0),
                                           metadata={"help": "inverse L2 penalties tried by 5-fold CV"})
    seed: int = field(default=0, metadata={"help": "seed of the CV folds"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RewardConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise RewardModelError(f"unknown reward config keys {sorted(unknown)}")
        kwargs = dict(data)
        for key in ("ridge_alphas", "logistic_cs"):
            if key in kwargs:
                kwargs[key] = tuple(float(x) for x in kwargs[key])
        return cls(**kwargs)


# ---- text ----------------------------------------------------------------------------------------------------

def compose_text(title: str = "", abstract: str = "", body: str = "") -> str:
    """Title, abstract and body joined by blank lines, leaving out a part the body already contains."""
    title, abstract, body = (title or "").strip(), (abstract or "").strip(), (body or "").strip()
    parts = []
    if title and title not in body[:4000]:
        parts.append(title)
    if abstract and abstract not in body:
        parts.append(abstract)
    if body:
        parts.append(body)
    return "\n\n".join(parts)


def paper_text(paper: Paper) -> str:
    """The text a judge sees for a generated paper: title, abstract and the LaTeX body with conclusion.

    A sample whose LaTeX could not be parsed is judged on what the model wrote, so that unparsable samples do
    not all get the same score (which would tie them and hide the difference from the preference pairs).
    """
    text = compose_text(paper.title, paper.abstract, paper.full_latex)
    return text if text.strip() else paper.raw_text


def _item_text(item: Item) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Paper):
        return paper_text(item)
    if isinstance(item, Mapping):
        return compose_text(item.get("title", ""), item.get("abstract", ""), item.get("text", ""))
    raise TypeError(f"cannot score a {type(item).__name__}; give a str, a schema.Paper or a dataset row")


_SECTION = re.compile(r"^\s*(#{1,3}\s+\S|\\section\*?\s*\{)", re.MULTILINE)


def cheap_features(texts: Sequence[str]) -> np.ndarray:
    """(n, 2): log(1 + whitespace word count), log(1 + number of sections: `\\section{` or `#`-`###` headers)."""
    return np.array([[np.log1p(len(t.split())), np.log1p(len(_SECTION.findall(t)))] for t in texts], dtype=float)


def _target(row: Mapping[str, Any]) -> tuple[Optional[float], Optional[bool]]:
    ratings = [float(r) for r in (row.get("ratings") or []) if r is not None]
    rating = float(np.mean(ratings)) if ratings else row.get("mean_rating")
    decision = row.get("decision")
    accepted = None if decision is None else str(decision).strip().lower().startswith("accept")
    return (None if rating is None else float(rating)), accepted


# ---- the model -------------------------------------------------------------------------------------------------

@dataclass
class RewardModel:
    """Ridge (mean rating) + logistic regression (accept probability) on paper embeddings."""

    config: RewardConfig
    rating_model: Any  # sklearn Pipeline(StandardScaler, RidgeCV)
    accept_model: Any  # sklearn Pipeline(StandardScaler, GridSearchCV(LogisticRegression))
    rating_range: tuple[float, float]  # rewards are clipped to the ratings seen in training
    meta: dict[str, Any] = field(default_factory=dict)

    # -- features
    def features(self, texts: Sequence[str], cache_dir: Optional[Path] = None) -> np.ndarray:
        """(n, 384 [+ 2]) feature matrix for texts."""
        cfg = self.config
        return _features(texts, cfg, cache_dir)

    # -- training
    @classmethod
    def train(cls, rows: Sequence[Mapping[str, Any]], config: Optional[RewardConfig] = None,
              cache_dir: Optional[Path] = None) -> "RewardModel":
        """Fit on Review-dataset rows (title, abstract, text, ratings or mean_rating, decision)."""
        from sklearn.linear_model import LogisticRegression, RidgeCV
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        cfg = config or RewardConfig()
        usable = [(r, *_target(r)) for r in rows]
        usable = [(r, y, a) for r, y, a in usable if y is not None and a is not None]
        if len(usable) < 10:
            raise ValueError(f"the reward model needs at least 10 rows with a rating and a decision; got {len(usable)}")
        acc = np.array([a for _, _, a in usable])
        if acc.all() or not acc.any():
            raise ValueError("the training rows have only one decision class; cannot fit the accept model")
        y = np.array([v for _, v, _ in usable])
        start = time.monotonic()
        x = _features([_item_text(r) for r, _, _ in usable], cfg, cache_dir)
        seconds = time.monotonic() - start
        folds = StratifiedKFold(n_splits=min(5, int(min(acc.sum(), (~acc).sum()))), shuffle=True,
                                random_state=cfg.seed)
        rating_model = make_pipeline(StandardScaler(), RidgeCV(alphas=list(cfg.ridge_alphas))).fit(x, y)
        search = GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(cfg.logistic_cs)}, cv=folds,
                              scoring="neg_log_loss")
        accept_model = make_pipeline(StandardScaler(), search).fit(x, acc)
        meta = {"n_train": len(usable), "train_mean_rating": float(y.mean()), "train_accept_rate": float(acc.mean()),
                "ridge_alpha": float(rating_model[-1].alpha_), "logistic_C": float(accept_model[-1].best_params_["C"]),
                "feature_seconds": round(seconds, 3), "n_features": int(x.shape[1]),
                "features": f"{DIM} embedding dims" + (" + log_words, log_sections" if cfg.use_length else "")}
        log.info("reward model trained on %d papers (alpha %.3g, C %.3g)", len(usable), meta["ridge_alpha"],
                 meta["logistic_C"])
        return cls(cfg, rating_model, accept_model, (float(y.min()), float(y.max())), meta)

    # -- scoring
    def score(self, items: Sequence[Item], cache_dir: Optional[Path] = None) -> list[dict[str, float]]:
        """For each paper (text, schema.Paper or dataset row): reward (predicted mean rating, clipped to the
        training range) and accept_prob."""
        if isinstance(items, (str, Paper)):
            items = [items]
        if not items:
            return []
        x = self.features([_item_text(i) for i in items], cache_dir)
        ratings = np.clip(self.rating_model.predict(x), *self.rating_range)
        probs = self.accept_model.predict_proba(x)[:, 1]
        return [{"reward": float(r), "accept_prob": float(p)} for r, p in zip(ratings, probs)]

    def reward_of(self, paper: Item) -> float:
        """The predicted mean rating of one paper, on the training rating scale."""
        return self.score([paper])[0]["reward"]

    # -- files
    def save(self, directory: Path) -> Path:
        """Write model.joblib and config.json (with the joblib's sha256) atomically into `directory`."""
        import joblib
        import sklearn

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        os.close(fd)
        try:
            joblib.dump({"rating_model": self.rating_model, "accept_model": self.accept_model}, tmp)
            digest = _sha256(Path(tmp))
            os.replace(tmp, directory / MODEL_FILE)
        finally:
            Path(tmp).unlink(missing_ok=True)
        config = {"format_version": FORMAT_VERSION, "embedding_model": self.config.embedding_model,
                  "embedding_dim": DIM, "config": asdict(self.config), "rating_range": list(self.rating_range),
                  "meta": self.meta, "model_sha256": digest, "sklearn_version": sklearn.__version__}
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2)
        os.replace(tmp, directory / CONFIG_FILE)
        return directory

    @classmethod
    def load(cls, directory: Path) -> "RewardModel":
        """Load a saved model; refuses files built with another embedding model or altered after saving."""
        import joblib

        directory = Path(directory)
        cfg_path, model_path = directory / CONFIG_FILE, directory / MODEL_FILE
        if not cfg_path.exists() or not model_path.exists():
            raise FileNotFoundError(f"{directory} is not a reward model folder (needs {CONFIG_FILE} and {MODEL_FILE})")
        try:
            data = json.loads(cfg_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RewardModelError(f"{cfg_path}: not valid JSON: {exc}") from exc
        if data.get("embedding_model") != EMBEDDING_MODEL or data.get("embedding_dim") != DIM:
            raise RewardModelError(
                f"{directory} was trained on embeddings of {data.get('embedding_model')!r} "
                f"({data.get('embedding_dim')} dims), but this installation embeds with {EMBEDDING_MODEL!r} "
                f"({DIM} dims); retrain it with `cycleresearcher reward train`")
        if data.get("format_version") != FORMAT_VERSION:
            raise RewardModelError(f"{directory}: unsupported format_version {data.get('format_version')!r}")
        # joblib files are pickles: load only the exact bytes this code saved.
        if _sha256(model_path) != data.get("model_sha256"):
            raise RewardModelError(f"{model_path} does not match the sha256 in {CONFIG_FILE}; refusing to load it")
        config = RewardConfig.from_dict(data["config"])
        if config.embedding_model != EMBEDDING_MODEL:
            raise RewardModelError(f"{directory}: config names embedding model {config.embedding_model!r}")
        models = joblib.load(model_path)
        low, high = data["rating_range"]
        return cls(config, models["rating_model"], models["accept_model"], (float(low), float(high)),
                   data.get("meta", {}))


def _features(texts: Sequence[str], cfg: RewardConfig, cache_dir: Optional[Path]) -> np.ndarray:
    if cfg.embedding_model != EMBEDDING_MODEL:
        raise RewardModelError(f"this installation embeds with {EMBEDDING_MODEL!r}, not {cfg.embedding_model!r}")
    emb = embed_documents(list(texts), chunk_tokens=cfg.chunk_tokens, max_chunks=cfg.max_chunks,
                          cache_dir=cache_dir).astype(float)
    return np.hstack([emb, cheap_features(texts)]) if cfg.use_length else emb


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_model_dir() -> Path:
    """$CYCLERESEARCHER_HOME/reward, or ~/.cycleresearcher/reward."""
    home = os.environ.get("CYCLERESEARCHER_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".cycleresearcher") / "reward"


@functools.lru_cache(maxsize=4)
def _cached(directory: str) -> RewardModel:
    return RewardModel.load(Path(directory))


def reward_of(paper: Item, model: Union[RewardModel, Path, str, None] = None) -> float:
    """The scalar reward of one paper (predicted mean rating, on the rating scale): usable as the cycle's
    reward. `model` is a RewardModel or a saved folder (default: `default_model_dir()`), loaded once."""
    if not isinstance(model, RewardModel):
        model = _cached(str(Path(model) if model is not None else default_model_dir()))
    return model.reward_of(paper)
