"""Small ranking statistics for the reward model's own reports (model card, probes); the full evaluation with
baselines lives in `cycleresearcher.evaluate`, a higher layer this package must not import."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """P(score of a positive > score of a negative), ties 1/2 (Mann-Whitney); NaN if a class is missing."""
    from scipy.stats import rankdata

    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy.stats import rankdata

    x, y = rankdata(np.asarray(a, float)), rankdata(np.asarray(b, float))
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def bootstrap(metric: Callable[[np.ndarray], float], n: int, n_resamples: int = 1000, seed: int = 0,
              level: float = 0.95) -> tuple[float, float, float]:
    """(point estimate, low, high): `metric(idx)` on all indices and on `n_resamples` resamples of them."""
    rng = np.random.default_rng(seed)
    point = metric(np.arange(n))
    vals = np.array([metric(rng.integers(0, n, n)) for _ in range(n_resamples)], dtype=float)
    vals = vals[~np.isnan(vals)]
    if not len(vals):
        return point, float("nan"), float("nan")
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(point), float(lo), float(hi)
