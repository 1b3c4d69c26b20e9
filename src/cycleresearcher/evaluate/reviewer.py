"""Reviewer evaluation: a judge's predictions on a Review dataset split against the human reviewers, beside
the constant, single-human and length-only baselines, with bootstrap intervals and a calibration plot.

    cycleresearcher eval reviewer --reviewer reward:runs/reward --data data/review --split test --out eval/
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from ..errors import InputError
from ..io import save_figure, write_json_atomic, write_jsonl_atomic
from ..schema import Verdict
from ..judges.baselines import Baselines, accepted, row_ratings, row_text
from .metrics import (DEFINITIONS, METRICS, Weights, _loo_pairs, balanced_accuracy, bootstrap_ci, bootstrap_weights,
                      decision_accuracy, expected_calibration_error, macro_f1, mean_bias, proxy_errors, roc_auc,
                      spearman, weighted_mean)

log = logging.getLogger(__name__)


@dataclass
class System:
    """One predictor's per-paper outputs on the evaluation papers."""

    name: str
    rating: np.ndarray  # (n,) predicted rating
    accept: np.ndarray  # (n,) predicted decision
    accept_prob: Optional[np.ndarray]  # (n,) or None
    target: np.ndarray  # (n,) what spearman and bias compare against
    proxy_sq: np.ndarray  # (n,) per-paper proxy errors
    proxy_abs: np.ndarray

    def metric_fns(self, truth: np.ndarray, n_bins: int = 10) -> dict[str, Callable[[Weights], Any]]:
        fns: dict[str, Callable[[Weights], Any]] = {
            "proxy_mse": lambda w: weighted_mean(self.proxy_sq, w),
            "proxy_mae": lambda w: weighted_mean(self.proxy_abs, w),
            "accuracy": lambda w: decision_accuracy(self.accept, truth, w),
            "macro_f1": lambda w: macro_f1(self.accept, truth, w),
            "balanced_accuracy": lambda w: balanced_accuracy(self.accept, truth, w),
            "roc_auc": lambda w: roc_auc(self.rating, truth, w),
            "spearman": lambda w: spearman(self.rating, self.target, w),
            "mean_bias": lambda w: mean_bias(self.rating, self.target, w),
        }
        if self.accept_prob is not None:
            fns["ece"] = lambda w: expected_calibration_error(self.accept_prob, truth, n_bins, w)
        return fns


def _system_from_predictions(name: str, preds: Sequence[Mapping[str, Any]], ratings: list[list[float]],
                             human_mean: np.ndarray, mean_threshold: float) -> System:
    rating = np.array([float(p["mean_rating"]) for p in preds])
    probs = [p.get("accept_prob") for p in preds]
    accept_prob = np.array(probs, dtype=float) if all(q is not None for q in probs) else None
    decisions = []
    for p, r in zip(preds, rating):
        if p.get("decision") is not None:
            decisions.append(accepted(p["decision"]))
        elif p.get("accept_prob") is not None:
            decisions.append(float(p["accept_prob"]) >= 0.5)
        else:
            decisions.append(bool(r > mean_threshold))
    sq, ab = proxy_errors(rating, ratings)
    return System(name, rating, np.array(decisions, bool), accept_prob, human_mean, sq, ab)


def _single_human_system(ratings: list[list[float]], threshold: float, seed: int) -> System:
    # Ranking metrics need one score per paper: draw one reviewer per paper (seeded) and compare it with the
    # mean of the others, never with a mean that contains its own rating.
    idx, held, other = _loo_pairs(ratings, mode="random", seed=seed)
    n = len(ratings)
    rating = np.full(n, np.nan)
    target = np.full(n, np.nan)
    rating[idx], target[idx] = held, other
    sq, ab = proxy_errors(None, ratings, mode="all")
    return System("single_human", rating, rating > threshold, None, target, sq, ab)


def evaluate_reviewer(predictions: Sequence[Mapping[str, Any]], rows: Iterable[Mapping[str, Any]],
                      train_rows: Iterable[Mapping[str, Any]], n_resamples: int = 1000, seed: int = 0,
                      n_bins: int = 10, out_dir: Optional[Path] = None, name: str = "model") -> dict[str, Any]:
    """Score a reviewer's predictions on dataset rows, beside the constant, single-human and length baselines.

    predictions: one dict per paper: paper_id, mean_rating (None when the review failed to parse) and
    accept_prob and/or decision. rows: papers with paper_id, ratings, decision, title/abstract/text.
    Only papers with >= 2 human ratings, a decision and a usable prediction are scored (the counts of the
    others are in the report). Returns a JSON-able report; with out_dir, writes report.json and calibration.png.
    """
    rows = list(rows)
    if name in ("constant", "single_human", "length"):  # evaluating a baseline itself: keep both rows
        name = f"judge:{name}"
    by_id = {str(p["paper_id"]): p for p in predictions}
    kept, excluded = [], {"fewer_than_2_ratings": 0, "no_decision": 0, "no_prediction": 0, "failed_prediction": 0}
    for row in rows:
        pred = by_id.get(str(row.get("paper_id")))
        if len(row_ratings(row)) < 2:
            excluded["fewer_than_2_ratings"] += 1
        elif row.get("decision") is None:
            excluded["no_decision"] += 1
        elif pred is None:
            excluded["no_prediction"] += 1
        elif pred.get("mean_rating") is None or not np.isfinite(float(pred["mean_rating"])):
            excluded["failed_prediction"] += 1
        else:
            kept.append((row, pred))
    if len(kept) < 2:
        raise InputError(f"only {len(kept)} papers can be scored (excluded: {excluded})")
    base = Baselines.fit(list(train_rows))
    eval_rows = [r for r, _ in kept]
    ratings = [row_ratings(r) for r in eval_rows]
    truth = np.array([accepted(r["decision"]) for r in eval_rows])
    human_mean = np.array([np.mean(r) for r in ratings])
    n = len(kept)
    const_accept = base.accept_rate >= 0.5
    systems = [
        _system_from_predictions(name, [p for _, p in kept], ratings, human_mean, base.mean_threshold),
        _system_from_predictions("constant", [dict(c, decision=const_accept) for c in base.constant(n)],
                                 ratings, human_mean, base.mean_threshold),
        _single_human_system(ratings, base.human_threshold, seed),
        _system_from_predictions("length", base.length([row_text(r) for r in eval_rows]), ratings, human_mean,
                                 base.mean_threshold),
    ]
    w = bootstrap_weights(n, n_resamples, seed)  # one set of resamples for all systems: paired comparisons
    report_systems: dict[str, Any] = {}
    fns_by_system = {}
    for s in systems:
        fns = s.metric_fns(truth, n_bins)
        fns_by_system[s.name] = fns
        report_systems[s.name] = {m: (bootstrap_ci(fns[m], n, weights=w).to_dict() if m in fns else None)
                                  for m in METRICS}
    comparisons = {}
    for other in ("single_human", "constant", "length"):
        comp = {}
        for m in ("proxy_mae", "proxy_mse"):
            a, b = fns_by_system[name][m], fns_by_system[other][m]
            # relative reduction, as the paper reports "26.89% lower proxy MAE than a single human"
            comp[f"{m}_reduction"] = bootstrap_ci(lambda ww, a=a, b=b: 1 - np.asarray(a(ww)) / np.asarray(b(ww)),
                                                  n, weights=w).to_dict()
        comp["roc_auc_difference"] = bootstrap_ci(
            lambda ww, o=other: np.asarray(fns_by_system[name]["roc_auc"](ww))
            - np.asarray(fns_by_system[o]["roc_auc"](ww)), n, weights=w).to_dict()
        comparisons[f"{name}_vs_{other}"] = comp
    report = {
        "n_rows": len(rows), "n_papers": n, "excluded": excluded,
        "accept_rate": round(float(truth.mean()), 6), "human_mean_rating": round(float(human_mean.mean()), 6),
        "n_resamples": n_resamples, "seed": seed, "ci_level": 0.95,
        "baselines_fitted_on": {"train_mean_rating": base.mean_rating, "train_accept_rate": base.accept_rate,
                                "human_threshold": base.human_threshold, "mean_threshold": base.mean_threshold},
        "systems": report_systems, "comparisons": comparisons, "definitions": DEFINITIONS,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        report["calibration_plot"] = str(calibration_plot(
            {s.name: s.accept_prob for s in systems if s.accept_prob is not None}, truth,
            out_dir / "calibration.png", n_bins))
        write_json_atomic(out_dir / "report.json", report)
    return report


# ---- files ---------------------------------------------------------------------------------------------------

def calibration_plot(probs: Mapping[str, np.ndarray], accept: np.ndarray, path: Path, n_bins: int = 10) -> Path:
    """Reliability diagram: observed accept rate against mean predicted probability per bin, one line per
    system, with each system's ECE in the legend. Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    y = np.asarray(accept, float)
    for label, p in probs.items():
        bins = np.minimum((np.asarray(p) * n_bins).astype(int), n_bins - 1)
        xs, ys, sizes = [], [], []
        for b in range(n_bins):
            sel = bins == b
            if sel.any():
                xs.append(p[sel].mean())
                ys.append(y[sel].mean())
                sizes.append(sel.sum())
        ece = expected_calibration_error(p, accept.astype(bool), n_bins)
        ax.plot(xs, ys, marker="o", label=f"{label} (ECE {ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted accept probability")
    ax.set_ylabel("observed accept rate")
    ax.set_title(f"Calibration ({len(y)} papers, {n_bins} bins)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    try:
        save_figure(fig, Path(path), dpi=120)
    finally:
        plt.close(fig)
    return path


def load_split(data: Path, split: str) -> list[dict[str, Any]]:
    """One split of a Review dataset folder (datasets.save_to_disk) as a list of row dicts."""
    from datasets import load_from_disk

    data = Path(data)
    if not data.exists():
        raise InputError(f"dataset not found: {data}")
    ds = load_from_disk(str(data))
    if split not in ds:
        raise InputError(f"{data} has no split {split!r}; it has {sorted(ds.keys())}")
    return [dict(r) for r in ds[split]]


def evaluate_reviewer_spec(spec: str, data: Path, split: str = "test", limit: Optional[int] = None,
                           out_dir: Optional[Path] = None, n_resamples: int = 1000, seed: int = 0,
                           n_reviewers: int = 4) -> dict[str, Any]:
    """Run a judge (see `judges.get_judge`) on a Review dataset split and score it with `evaluate_reviewer`.

    The baselines are fitted on the dataset's train split. With out_dir, predictions.jsonl, report.json and
    calibration.png are written there."""
    train = load_split(data, "train")
    rows = load_split(data, split)
    if limit is not None:
        rows = rows[:limit]
    from ..judges import get_judge

    judge = get_judge(spec, train_rows=train, n_reviewers=n_reviewers)
    verdicts = judge.score(rows)
    predictions = [prediction_of(v, r["paper_id"]) for r, v in zip(rows, verdicts)]
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(Path(out_dir) / "predictions.jsonl", predictions)
    name = re.sub(r"[^A-Za-z0-9_.:-]+", "_", spec)
    report = evaluate_reviewer(predictions, rows, train, n_resamples=n_resamples, seed=seed, out_dir=out_dir,
                               name=name)
    report["reviewer"] = spec
    report["split"] = split
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / "report.json", report)
    return report


def prediction_of(verdict: Verdict, paper_id: Any) -> dict[str, Any]:
    """A verdict as one line of predictions.jsonl (the shape `evaluate_reviewer` reads)."""
    return {"paper_id": paper_id, "mean_rating": verdict.score, "accept_prob": verdict.accept_prob,
            "decision": verdict.decision, "problems": list(verdict.problems), "flags": list(verdict.flags)}
