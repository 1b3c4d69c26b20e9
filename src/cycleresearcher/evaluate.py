"""Reviewer metrics with honest baselines and bootstrap confidence intervals.

    cycleresearcher eval reviewer --reviewer reward:runs/reward --data data/review --split test --out eval/
    cycleresearcher eval papers runs/demo --judge reward:runs/reward

    report = evaluate_reviewer(predictions, test_rows, train_rows, n_resamples=1000, seed=0, out_dir=Path("eval"))

Every metric is a pure function of per-paper arrays. Each takes optional bootstrap `weights`: None for the
point estimate, or an integer matrix (B, n) whose row b says how often each paper appears in resample b
(papers are resampled with replacement). A metric evaluated on weights returns one value per resample,
so 1000 resamples cost a few matrix products instead of a Python loop.

Beside the evaluated reviewer, every report carries three baselines (see DESIGN.md, "Evaluation that
means something"): a constant (the train-set mean rating), the single human reviewer (each reviewer left
out against the others), and a length-only model (log word count, fitted on train).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)

Weights = Optional[np.ndarray]  # None, or (B, n) resample counts


# ---- weights ----------------------------------------------------------------------------------------------

def _as_weights(weights: Weights, n: int) -> tuple[np.ndarray, bool]:
    """(B, n) float weights and whether the caller passed a batch (else the result is squeezed to a float)."""
    if weights is None:
        return np.ones((1, n)), False
    w = np.asarray(weights, dtype=float)
    if w.ndim == 1:
        w = w[None, :]
        batched = False
    else:
        batched = True
    if w.shape[1] != n:
        raise ValueError(f"weights have {w.shape[1]} columns for {n} papers")
    return w, batched


def _out(values: np.ndarray, batched: bool):
    return values if batched else float(values[0])


def weighted_mean(values: Sequence[float], weights: Weights = None):
    """Mean of `values` (n,), ignoring NaN entries; with weights (B, n) one mean per row."""
    v = np.asarray(values, dtype=float)
    w, batched = _as_weights(weights, len(v))
    ok = ~np.isnan(v)
    num = w[:, ok] @ v[ok]
    den = w[:, ok].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan), batched)


# ---- proxy error (CycleResearcher, arXiv 2411.00816, Sec. 4.1) --------------------------------------------

def _loo_pairs(ratings: Sequence[Sequence[float]], mode: str = "all", seed: int = 0):
    """Leave-one-out pairs: (paper index, held-out rating r_ij, mean of the other ratings of paper i).

    mode "all": every reviewer j of every paper with >= 2 ratings (the expectation of the paper's random draw);
    mode "random": one reviewer per paper, drawn with `seed` (the paper's procedure, noisier)."""
    if mode not in ("all", "random"):
        raise ValueError(f"mode must be 'all' or 'random', got {mode!r}")
    rng = np.random.default_rng(seed)
    paper, held, other = [], [], []
    for i, r in enumerate(ratings):
        r = np.asarray([x for x in r if x is not None], dtype=float)
        if len(r) < 2:
            continue
        js = range(len(r)) if mode == "all" else [int(rng.integers(len(r)))]
        for j in js:
            paper.append(i)
            held.append(r[j])
            other.append((r.sum() - r[j]) / (len(r) - 1))
    return np.asarray(paper, dtype=int), np.asarray(held, dtype=float), np.asarray(other, dtype=float)


def proxy_errors(pred: Optional[Sequence[float]], ratings: Sequence[Sequence[float]], mode: str = "all",
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-paper proxy squared and absolute errors, shape (n,) each; NaN for papers with < 2 ratings.

    The true score of a paper is unknown, so the target is a proxy: the mean of the OTHER reviewers. For paper
    i with ratings r_i1..r_ik (k >= 2) and the leave-one-out means  m_ij = (sum_l r_il - r_ij) / (k - 1):

        model (pred p_i):           e_i = (1/k) sum_j (p_i  - m_ij)^2     and  (1/k) sum_j |p_i  - m_ij|
        single human (pred=None):   e_i = (1/k) sum_j (r_ij - m_ij)^2     and  (1/k) sum_j |r_ij - m_ij|

    Model and human are scored against exactly the same targets m_ij, so their errors are comparable: the
    paper draws one reviewer j per paper at random (mode "random"); mode "all" averages over every j, which
    is that draw's expectation and has no seed noise. Since m_ij = true score + noise, E[e] is the true
    error plus the same noise variance for every predictor, so differences between predictors are kept.
    """
    idx, held, other = _loo_pairs(ratings, mode, seed)
    n = len(ratings)
    diff = (held if pred is None else np.asarray(pred, dtype=float)[idx]) - other
    count = np.bincount(idx, minlength=n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        sq = np.bincount(idx, diff ** 2, minlength=n) / count
        ab = np.bincount(idx, np.abs(diff), minlength=n) / count
    sq[count == 0] = np.nan
    ab[count == 0] = np.nan
    return sq, ab


def proxy_mse(pred: Sequence[float], ratings: Sequence[Sequence[float]], mode: str = "all", seed: int = 0,
              weights: Weights = None):
    """Proxy MSE: mean over papers (with >= 2 ratings) of (1/k) sum_j (p_i - m_ij)^2; see `proxy_errors`."""
    return weighted_mean(proxy_errors(pred, ratings, mode, seed)[0], weights)


def proxy_mae(pred: Sequence[float], ratings: Sequence[Sequence[float]], mode: str = "all", seed: int = 0,
              weights: Weights = None):
    """Proxy MAE: mean over papers (with >= 2 ratings) of (1/k) sum_j |p_i - m_ij|; see `proxy_errors`."""
    return weighted_mean(proxy_errors(pred, ratings, mode, seed)[1], weights)


def human_proxy_mse(ratings: Sequence[Sequence[float]], mode: str = "all", seed: int = 0, weights: Weights = None):
    """Single-human-reviewer proxy MSE: mean over papers of (1/k) sum_j (r_ij - m_ij)^2 (reviewer j left out)."""
    return weighted_mean(proxy_errors(None, ratings, mode, seed)[0], weights)


def human_proxy_mae(ratings: Sequence[Sequence[float]], mode: str = "all", seed: int = 0, weights: Weights = None):
    """Single-human-reviewer proxy MAE: mean over papers of (1/k) sum_j |r_ij - m_ij| (reviewer j left out)."""
    return weighted_mean(proxy_errors(None, ratings, mode, seed)[1], weights)


# ---- decisions ----------------------------------------------------------------------------------------------

def decision_accuracy(pred_accept: Sequence[bool], accept: Sequence[bool], weights: Weights = None):
    """Fraction of papers whose predicted decision equals the real one: mean_i [d_i == y_i]."""
    p, y = np.asarray(pred_accept, bool), np.asarray(accept, bool)
    return weighted_mean((p == y).astype(float), weights)


def _class_counts(p: np.ndarray, y: np.ndarray, w: np.ndarray, c: bool):
    tp = w @ ((p == c) & (y == c))
    fp = w @ ((p == c) & (y != c))
    fn = w @ ((p != c) & (y == c))
    return tp, fp, fn


def macro_f1(pred_accept: Sequence[bool], accept: Sequence[bool], weights: Weights = None):
    """Macro F1: the unweighted mean over the classes Accept and Reject of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c).

    A class that appears neither in the truth nor in the predictions is left out of the mean (as in
    scikit-learn); a class that appears in only one of them has F1 = 0."""
    p, y = np.asarray(pred_accept, bool), np.asarray(accept, bool)
    w, batched = _as_weights(weights, len(p))
    f1s, present = [], []
    for c in (True, False):
        tp, fp, fn = _class_counts(p, y, w, c)
        den = 2 * tp + fp + fn
        f1s.append(np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0))
        present.append(den > 0)
    f1s, present = np.stack(f1s), np.stack(present)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out((f1s * present).sum(0) / present.sum(0), batched)


def balanced_accuracy(pred_accept: Sequence[bool], accept: Sequence[bool], weights: Weights = None):
    """Balanced accuracy: the mean of the recalls of Accept and Reject, (TP/(TP+FN) + TN/(TN+FP)) / 2, over the
    classes present in the truth."""
    p, y = np.asarray(pred_accept, bool), np.asarray(accept, bool)
    w, batched = _as_weights(weights, len(p))
    recalls, present = [], []
    for c in (True, False):
        tp, _, fn = _class_counts(p, y, w, c)
        den = tp + fn
        recalls.append(np.where(den > 0, tp / np.where(den > 0, den, 1), 0.0))
        present.append(den > 0)
    recalls, present = np.stack(recalls), np.stack(present)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out((recalls * present).sum(0) / present.sum(0), batched)


def _group_sums(values: np.ndarray, w: np.ndarray):
    """For items sorted by value: per item, the weight of items strictly below it and of its tie group.

    values (n,), w (B, n) -> order (n,), below (B, n), tied (B, n), both in sorted order."""
    order = np.argsort(values, kind="mergesort")
    s = values[order]
    ws = w[:, order]
    _, first, group = np.unique(s, return_index=True, return_inverse=True)
    cum = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(ws, axis=1)], axis=1)  # cum[:, k] = sum ws[:, :k]
    last = np.append(first[1:], len(s))
    before = cum[:, first]  # (B, groups)
    total = cum[:, last] - before
    return order, before[:, group], total[:, group]


def roc_auc(scores: Sequence[float], accept: Sequence[bool], weights: Weights = None):
    """ROC-AUC of the scores for the accept label: P(score of an accepted paper > score of a rejected one),
    ties counting 1/2 (the Mann-Whitney statistic). NaN when one class is missing."""
    s, y = np.asarray(scores, float), np.asarray(accept, bool)
    w, batched = _as_weights(weights, len(s))
    order, _, _ = _group_sums(s, w)
    neg_w = w * (~y).astype(float)
    _, below_neg, tied_neg = _group_sums(s, neg_w)  # same order: argsort depends on s only
    pos_sorted = (w * y)[:, order]
    num = (pos_sorted * (below_neg + 0.5 * tied_neg)).sum(1)
    den = (w @ y.astype(float)) * (w @ (~y).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan), batched)


def _weighted_ranks(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties averaged) of each item within the multiset it forms with weights w."""
    order, below, tied = _group_sums(values, w)
    ranks = np.empty_like(below)
    ranks[:, order] = below + (tied + 1) / 2
    return ranks


def spearman(pred: Sequence[float], target: Sequence[float], weights: Weights = None):
    """Spearman rank correlation: the Pearson correlation of the average ranks of pred and of target.
    NaN when either has no spread (a constant predictor)."""
    x, t = np.asarray(pred, float), np.asarray(target, float)
    w, batched = _as_weights(weights, len(x))
    rx, rt = _weighted_ranks(x, w), _weighted_ranks(t, w)
    tot = w.sum(1, keepdims=True)
    mx, mt = (w * rx).sum(1, keepdims=True) / tot, (w * rt).sum(1, keepdims=True) / tot
    cov = (w * (rx - mx) * (rt - mt)).sum(1)
    vx, vt = (w * (rx - mx) ** 2).sum(1), (w * (rt - mt) ** 2).sum(1)
    den = np.sqrt(vx * vt)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.where(den > 1e-12, cov / np.where(den > 1e-12, den, 1), np.nan), batched)


def mean_bias(pred: Sequence[float], target: Sequence[float], weights: Weights = None):
    """Mean bias: mean_i (pred_i - target_i); positive means the reviewer rates higher than the humans."""
    return weighted_mean(np.asarray(pred, float) - np.asarray(target, float), weights)


def expected_calibration_error(prob: Sequence[float], accept: Sequence[bool], n_bins: int = 10,
                               weights: Weights = None):
    """Expected calibration error of accept probabilities over `n_bins` equal-width bins of [0, 1]:

        ECE = sum_b (n_b / n) |acc_b - conf_b| = (1/n) sum_b |sum_{i in b} (y_i - p_i)|

    where acc_b is the accept rate and conf_b the mean probability in bin b; p = 1.0 goes in the last bin."""
    p, y = np.asarray(prob, float), np.asarray(accept, bool).astype(float)
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("accept probabilities must lie in [0, 1]")
    w, batched = _as_weights(weights, len(p))
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    onehot = np.zeros((len(p), n_bins))
    onehot[np.arange(len(p)), bins] = 1.0
    gap = w @ (onehot * (y - p)[:, None])  # (B, n_bins)
    return _out(np.abs(gap).sum(1) / w.sum(1), batched)


def fit_threshold(scores: Sequence[float], accept: Sequence[bool]) -> float:
    """The threshold t maximising the accuracy of `accept = score > t` (midpoints between distinct scores)."""
    s, y = np.asarray(scores, float), np.asarray(accept, bool)
    u = np.unique(s)
    cands = np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2, [u[-1] + 1.0]])
    acc = [np.mean((s > t) == y) for t in cands]
    return float(cands[int(np.argmax(acc))])


# ---- bootstrap -----------------------------------------------------------------------------------------------

def bootstrap_weights(n: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_resamples, n) counts: row b says how many times each of the n papers is drawn in resample b."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)


@dataclass
class Estimate:
    value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Optional[float]]:
        return {k: (None if v is None or math.isnan(v) else round(float(v), 6))
                for k, v in (("value", self.value), ("ci_low", self.ci_low), ("ci_high", self.ci_high))}


def bootstrap_ci(metric: Callable[[Weights], Any], n: int, n_resamples: int = 1000, seed: int = 0,
                 level: float = 0.95, weights: Optional[np.ndarray] = None) -> Estimate:
    """Point estimate and percentile bootstrap interval of `metric(weights)` over n papers.

    `metric` is called once with None (the point estimate) and once with the (B, n) resample counts."""
    point = float(metric(None))
    w = bootstrap_weights(n, n_resamples, seed) if weights is None else weights
    values = np.asarray(metric(w), dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return Estimate(point, math.nan, math.nan)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return Estimate(point, float(lo), float(hi))


# ---- systems and the report ----------------------------------------------------------------------------------

METRICS = ("proxy_mse", "proxy_mae", "accuracy", "macro_f1", "balanced_accuracy", "roc_auc", "spearman",
           "mean_bias", "ece")
DEFINITIONS = {
    "proxy_mse": proxy_mse.__doc__.split("\n")[0],
    "proxy_mae": proxy_mae.__doc__.split("\n")[0],
    "accuracy": decision_accuracy.__doc__.split("\n")[0],
    "macro_f1": macro_f1.__doc__.split("\n")[0],
    "balanced_accuracy": balanced_accuracy.__doc__.split("\n")[0],
    "roc_auc": "ROC-AUC of the predicted rating for the real accept decision.",
    "spearman": "Spearman correlation of the predicted rating with the human mean rating (for the single "
                "human: one reviewer drawn per paper against the mean of the others).",
    "mean_bias": "mean (predicted rating - human mean rating).",
    "ece": "Expected calibration error of the accept probability, 10 equal-width bins.",
    "single_human": "One human reviewer: proxy errors average over every reviewer left out in turn; ranking and "
                    "decision metrics use one reviewer drawn per paper (seeded) and accept if its rating exceeds "
                    "a threshold fitted on train. Its decision metrics are optimistic: the real decisions were "
                    "made from these very ratings.",
}


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


def _accepted(decision: Any) -> bool:
    if isinstance(decision, bool):
        return decision
    return str(decision).strip().lower().startswith("accept")


def _ratings(row: Mapping[str, Any]) -> list[float]:
    return [float(r) for r in (row.get("ratings") or []) if r is not None]


def _human_mean(row: Mapping[str, Any]) -> float:
    r = _ratings(row)
    return float(np.mean(r)) if r else float(row.get("mean_rating") or math.nan)


def length_features(texts: Sequence[str]) -> np.ndarray:
    """(n, 1): log(1 + whitespace word count), the only input of the length baseline."""
    return np.log1p(np.array([[len(t.split())] for t in texts], dtype=float))


def row_text(row: Mapping[str, Any]) -> str:
    from .reward import compose_text

    return compose_text(row.get("title", ""), row.get("abstract", ""), row.get("text", ""))


@dataclass
class Baselines:
    """What the baselines learn from the train split."""

    mean_rating: float
    accept_rate: float
    human_threshold: float  # one reviewer's rating > t means accept (fitted on train reviewer ratings)
    mean_threshold: float  # a mean rating > t means accept (for reviewers that give no decision)
    length_rating: Any  # sklearn LinearRegression on length_features
    length_accept: Any  # sklearn LogisticRegression on length_features

    @classmethod
    def fit(cls, train_rows: Sequence[Mapping[str, Any]]) -> "Baselines":
        from sklearn.linear_model import LinearRegression, LogisticRegression

        rows = [r for r in train_rows if _ratings(r) and r.get("decision") is not None]
        if len(rows) < 2:
            raise ValueError(f"the baselines need train papers with ratings and decisions; got {len(rows)}")
        means = np.array([_human_mean(r) for r in rows])
        acc = np.array([_accepted(r["decision"]) for r in rows])
        if acc.all() or not acc.any():
            raise ValueError("the train split has only one decision class; cannot fit the baselines")
        indiv = np.array([x for r in rows for x in _ratings(r)])
        indiv_acc = np.array([a for r, a in zip(rows, acc) for _ in _ratings(r)])
        x = length_features([row_text(r) for r in rows])
        return cls(mean_rating=float(means.mean()), accept_rate=float(acc.mean()),
                   human_threshold=fit_threshold(indiv, indiv_acc), mean_threshold=fit_threshold(means, acc),
                   length_rating=LinearRegression().fit(x, means),
                   length_accept=LogisticRegression().fit(x, acc))

    def constant(self, n: int) -> list[dict[str, Any]]:
        return [{"mean_rating": self.mean_rating, "accept_prob": self.accept_rate} for _ in range(n)]

    def length(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        x = length_features(texts)
        ratings = self.length_rating.predict(x)
        probs = self.length_accept.predict_proba(x)[:, 1]
        return [{"mean_rating": float(r), "accept_prob": float(p)} for r, p in zip(ratings, probs)]


def _system_from_predictions(name: str, preds: Sequence[Mapping[str, Any]], ratings: list[list[float]],
                             human_mean: np.ndarray, mean_threshold: float) -> System:
    rating = np.array([float(p["mean_rating"]) for p in preds])
    probs = [p.get("accept_prob") for p in preds]
    accept_prob = np.array(probs, dtype=float) if all(q is not None for q in probs) else None
    decisions = []
    for p, r in zip(preds, rating):
        if p.get("decision") is not None:
            decisions.append(_accepted(p["decision"]))
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
        if len(_ratings(row)) < 2:
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
        raise ValueError(f"only {len(kept)} papers can be scored (excluded: {excluded})")
    base = Baselines.fit(list(train_rows))
    eval_rows = [r for r, _ in kept]
    ratings = [_ratings(r) for r in eval_rows]
    truth = np.array([_accepted(r["decision"]) for r in eval_rows])
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
        write_json(out_dir / "report.json", report)
    return report


# ---- files ---------------------------------------------------------------------------------------------------

def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (tmp file + os.replace)."""
    from .data.cache import write_bytes_atomic

    write_bytes_atomic(Path(path), (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path


# ---- judges: anything that turns paper texts into ratings ------------------------------------------------------

Judge = Callable[[list[Any]], list[dict[str, Any]]]  # papers (text or schema.Paper) -> one dict each


def make_judge(spec: str, train_rows: Optional[Sequence[Mapping[str, Any]]] = None,
               n_reviewers: int = 4) -> Judge:
    """A judge for a spec: `reward:DIR` (scalar reward model), `constant`/`length` (baselines fitted on
    train_rows) or any backend spec (`local`, `hf:PATH`, `openai:MODEL@URL`, ...) run as a Reviewer.

    The judge maps papers (texts or schema.Paper) to dicts with mean_rating (None when the review did not parse), accept_prob
    (None when the judge gives none) and decision."""
    spec = spec.strip()
    if spec.startswith("reward:"):
        from .reward import RewardModel

        model = RewardModel.load(Path(spec.partition(":")[2]))
        return lambda texts: [{"mean_rating": s["reward"], "accept_prob": s["accept_prob"], "decision": None}
                              for s in model.score(texts)]
    if spec in ("constant", "length"):
        if not train_rows:
            raise ValueError(f"the {spec!r} judge needs train rows to fit on")
        from .reward import _item_text

        base = Baselines.fit(list(train_rows))
        if spec == "constant":
            return lambda items: base.constant(len(items))
        return lambda items: base.length([_item_text(i) for i in items])
    return _reviewer_judge(spec, n_reviewers)


def _reviewer_judge(spec: str, n_reviewers: int) -> Judge:
    from .backends import get_backend
    from .review import Reviewer  # written by the lead; imported only when a model reviewer is asked for

    reviewer = Reviewer(get_backend(spec), n_reviewers=n_reviewers)

    def judge(texts: list[str]) -> list[dict[str, Any]]:
        return [{"mean_rating": rs.mean_rating, "accept_prob": None, "decision": rs.decision,
                 "problems": list(rs.problems)} for rs in reviewer.review_many(list(texts))]

    return judge


def _load_split(data: Path, split: str) -> list[dict[str, Any]]:
    from datasets import load_from_disk

    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"dataset not found: {data}")
    ds = load_from_disk(str(data))
    if split not in ds:
        raise ValueError(f"{data} has no split {split!r}; it has {sorted(ds.keys())}")
    return [dict(r) for r in ds[split]]


def evaluate_reviewer_spec(spec: str, data: Path, split: str = "test", limit: Optional[int] = None,
                           out_dir: Optional[Path] = None, n_resamples: int = 1000, seed: int = 0,
                           n_reviewers: int = 4) -> dict[str, Any]:
    """Run a judge (see `make_judge`) on a Review dataset split and score it with `evaluate_reviewer`.

    The baselines are fitted on the dataset's train split. With out_dir, predictions.jsonl, report.json and
    calibration.png are written there."""
    train = _load_split(data, "train")
    rows = _load_split(data, split)
    if limit is not None:
        rows = rows[:limit]
    judge = make_judge(spec, train, n_reviewers)
    outputs = judge([row_text(r) for r in rows])
    predictions = [dict(o, paper_id=r["paper_id"]) for r, o in zip(rows, outputs)]
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        _write_jsonl(Path(out_dir) / "predictions.jsonl", predictions)
    name = re.sub(r"[^A-Za-z0-9_.:-]+", "_", spec)
    report = evaluate_reviewer(predictions, rows, train, n_resamples=n_resamples, seed=seed, out_dir=out_dir,
                               name=name)
    report["reviewer"] = spec
    report["split"] = split
    if out_dir is not None:
        write_json(Path(out_dir) / "report.json", report)
    return report


def _write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    from .data.cache import write_bytes_atomic

    write_bytes_atomic(path, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records).encode("utf-8"))


# ---- generated papers of a cycle run --------------------------------------------------------------------------

def _training_reward(run_dir: Path) -> Optional[str]:
    cfg = run_dir / "config.yaml"
    if not cfg.exists():
        return None
    import yaml

    data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
    for key in ("reward", "reviewer", "reward_model", "judge"):
        if isinstance(data, dict) and isinstance(data.get(key), str):
            return data[key]
    return None


def evaluate_papers(run_dir: Path, judge_spec: str, n_resamples: int = 1000, seed: int = 0,
                    n_reviewers: int = 4) -> dict[str, Any]:
    """Score every round's papers (RUN_DIR/round-XX/papers.jsonl) with a judge; per round the mean and max
    rating with bootstrap 95% intervals (papers resampled within the round).

    The judge should not be the reward the policy was trained on (a policy can learn to please its own
    reward); `judge_is_training_reward` in the report says whether it is, when config.yaml tells."""
    from .schema import Paper

    run_dir = Path(run_dir)
    rounds = sorted(p for p in run_dir.glob("round-*") if (p / "papers.jsonl").exists())
    if not rounds:
        raise FileNotFoundError(f"no round-*/papers.jsonl under {run_dir}")
    training = _training_reward(run_dir)
    same = None if training is None else training.strip() == judge_spec.strip()
    if same:
        log.warning("the judge %s is the reward the run was trained on; its scores flatter the policy", judge_spec)
    judge = make_judge(judge_spec, n_reviewers=n_reviewers)
    per_round = []
    for k, rdir in enumerate(rounds):
        papers = [Paper.from_dict(json.loads(line)) for line in
                  (rdir / "papers.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
        outs = judge(papers) if papers else []
        scores = np.array([o["mean_rating"] for o in outs if o.get("mean_rating") is not None], dtype=float)
        entry: dict[str, Any] = {"round": rdir.name, "n_papers": len(papers), "n_scored": int(len(scores))}
        if len(scores):
            w = bootstrap_weights(len(scores), n_resamples, seed + k)
            entry["mean"] = bootstrap_ci(lambda ww: weighted_mean(scores, ww), len(scores), weights=w).to_dict()
            entry["max"] = bootstrap_ci(lambda ww: _weighted_max(scores, ww), len(scores), weights=w).to_dict()
        per_round.append(entry)
    return {"run_dir": str(run_dir), "judge": judge_spec, "training_reward": training,
            "judge_is_training_reward": same, "rounds": per_round,
            "note": "bootstrap intervals for a maximum are rough (the max of a resample never exceeds the sample's)"}


def _weighted_max(values: np.ndarray, weights: Weights):
    w, batched = _as_weights(weights, len(values))
    masked = np.where(w > 0, values[None, :], -np.inf)
    return _out(masked.max(1), batched)
