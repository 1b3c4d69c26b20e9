"""Reviewer metrics as pure functions, with bootstrap confidence intervals.

Every metric is a pure function of per-paper arrays. Each takes optional bootstrap `weights`: None for the
point estimate, or an integer matrix (B, n) whose row b says how often each paper appears in resample b
(papers are resampled with replacement). A metric evaluated on weights returns one value per resample,
so 1000 resamples cost a few matrix products instead of a Python loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..judges.baselines import fit_threshold  # noqa: F401  (re-exported: a metric-side helper)

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


# ---- means of scores (the cycle's report and `eval papers`) -----------------------------------------------

N_RESAMPLES = 1000  # bootstrap resamples of every interval in a run's report (and in `eval papers`)


def mean_ci(values: Sequence[float], seed: int = 0, n_resamples: int = N_RESAMPLES) -> Optional[dict[str, Any]]:
    """{n, value, ci_low, ci_high}: the mean with a 95% percentile bootstrap interval (None when empty)."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if len(x) == 0:
        return None
    est = bootstrap_ci(lambda w: weighted_mean(x, w), len(x), n_resamples=n_resamples, seed=seed)
    return {"n": int(len(x)), **est.to_dict()}


def difference_ci(before: Sequence[float], after: Sequence[float], seed: int = 0,
                  n_resamples: int = N_RESAMPLES) -> Optional[dict[str, Any]]:
    """mean(after) - mean(before) with a 95% bootstrap interval (the two samples resampled independently)."""
    a = np.asarray([v for v in before if v is not None], dtype=float)
    b = np.asarray([v for v in after if v is not None], dtype=float)
    if len(a) == 0 or len(b) == 0:
        return None
    wa, wb = bootstrap_weights(len(a), n_resamples, seed), bootstrap_weights(len(b), n_resamples, seed + 1)
    diffs = weighted_mean(b, wb) - weighted_mean(a, wa)
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return {"value": round(float(b.mean() - a.mean()), 6), "ci_low": round(float(lo), 6),
            "ci_high": round(float(hi), 6)}
