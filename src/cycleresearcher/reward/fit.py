"""Fitting the reward model: a ranker trained within venue-year groups, its guard, its rating map, its accept head.

Targets. Ratings of different venues are on different scales (1-6, 1-10) and venues accept different shares, so
a paper is only ever compared with papers of its own group (venue, year, track): its target is the percentile
of its mean rating within the group. objective "pairwise" samples pairs of papers of one group whose
percentiles differ by at least `min_gap` and fits a logistic regression on the feature differences
(RankNet with a linear scorer: P(i above j) = sigmoid(w . (x_i - x_j))); "pointwise" fits a ridge regression
on the percentile centred within its group. The L2 strength is picked on a 20% split of the papers by the
mean within-group Spearman correlation. An accept head (fit_accept_head) is added to the ranker's score; see
model.py for why.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..embed import default_cache_dir
from ..errors import InputError
from .features import (ACCEPT_LENGTH, GUARD_DIRECTIONS, INTEGRITY, STRUCTURE, accept_features, clip_lengths,
                       common_bigrams, length_columns)
from .stats import spearman
from .text import model_text, raw_word_count

log = logging.getLogger(__name__)


def row_group(row: Mapping[str, Any]) -> str:
    if row.get("group"):
        return str(row["group"])
    venue, year = row.get("venue") or "", row.get("year") or ""
    return f"{venue}-{year}" if venue or year else "all"


def row_ratings(row: Mapping[str, Any]) -> list[float]:
    ratings = [float(r) for r in (row.get("ratings") or []) if r is not None]
    if not ratings and row.get("mean_rating") is not None:
        ratings = [float(row["mean_rating"])]
    return ratings


def row_accept(row: Mapping[str, Any]) -> Optional[bool]:
    d = row.get("decision")
    if d is None:
        return None
    return d if isinstance(d, bool) else str(d).strip().lower().startswith("accept")


def group_percentiles(values: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Each value's mid-rank percentile within its group, in (0, 1)."""
    from scipy.stats import rankdata

    out = np.zeros(len(values))
    g = np.asarray(groups)
    for name in set(groups):
        idx = np.nonzero(g == name)[0]
        out[idx] = (rankdata(values[idx]) - 0.5) / len(idx)
    return out


def within_group_spearman(score: np.ndarray, target: np.ndarray, groups: Sequence[str], min_n: int = 20) -> float:
    """Mean Spearman correlation within groups of >= min_n papers, weighted by group size."""
    g = np.asarray(groups)
    total, weight = 0.0, 0
    for name in set(groups):
        idx = np.nonzero(g == name)[0]
        if len(idx) >= min_n:
            rho = spearman(score[idx], target[idx])
            if not np.isnan(rho):
                total += rho * len(idx)
                weight += len(idx)
    return total / weight if weight else float("nan")


def sample_pairs(pct: np.ndarray, groups: Sequence[str], per_paper: int, min_gap: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index arrays of within-group pairs with pct[i] - pct[j] >= min_gap (i is the better paper)."""
    g = np.asarray(groups)
    left, right = [], []
    for name in set(groups):
        idx = np.nonzero(g == name)[0]
        if len(idx) < 2:
            continue
        for _ in range(per_paper):
            a = idx
            b = rng.choice(idx, size=len(idx))
            keep = np.abs(pct[a] - pct[b]) >= min_gap
            a, b = a[keep], b[keep]
            better = pct[a] > pct[b]
            left.append(np.where(better, a, b))
            right.append(np.where(better, b, a))
    if not left:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(left), np.concatenate(right)


def fit_ranker(xs: np.ndarray, pct: np.ndarray, groups: Sequence[str], objective: str, c: float,
               per_paper: int, min_gap: float, seed: int) -> np.ndarray:
    """Weights w of the linear scorer x -> x . w on standardised features (see the module docstring)."""
    if objective == "pointwise":
        from sklearn.linear_model import Ridge

        centred = pct - np.array([pct[np.asarray(groups) == g].mean() for g in groups])
        return Ridge(alpha=1.0 / c, fit_intercept=True).fit(xs, centred).coef_.astype(float)
    if objective != "pairwise":
        raise InputError(f"unknown objective {objective!r}; use pairwise or pointwise")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    i, j = sample_pairs(pct, groups, per_paper, min_gap, rng)
    if len(i) < 10:
        raise InputError("too few within-group pairs to train the ranker (need groups of 2+ papers with "
                         "different ratings)")
    diff = (xs[i] - xs[j]).astype(np.float32)
    sign = rng.random(len(i)) < 0.5  # both orders, so the problem is symmetric without an intercept
    diff[sign] *= -1
    model = LogisticRegression(C=c, fit_intercept=False, max_iter=500)
    model.fit(diff, ~sign)
    return model.coef_[0].astype(float)


def fit_accept_head(xa: np.ndarray, accepted: list[Optional[bool]], groups: Sequence[str], full: np.ndarray,
                    cfg) -> tuple[dict[str, np.ndarray], Optional[np.ndarray]]:
    """The accept head: a class-balanced logistic regression on features.accept_features of the full-text papers
    with a decision, in groups holding both decisions (a group of accepts only says nothing about rejects).
    Length columns are clipped to the 2%..`length_cap_quantile` range of the full-text papers first: padding
    past the cap gains nothing, and a text given without its appendix or references is not scored far below
    every real paper (the completeness term of the guard prices a short main body). Returns its arrays
    and its standardised score on every row, or ({}, None) when the data has too few of either decision."""
    from sklearn.linear_model import LogisticRegression

    rows, onehot = decided_in_mixed_groups(accepted, groups, among=full)
    y = np.array([bool(accepted[k]) for k in rows], dtype=bool)
    if len(rows) < 20 or y.sum() < 5 or (~y).sum() < 5:
        return {}, None
    cols = length_columns()
    cap = np.quantile(xa[full][:, cols], cfg.length_cap_quantile, axis=0)
    floor = np.quantile(xa[full][:, cols], 0.02, axis=0)
    x = clip_lengths(xa, floor, cap)
    mean, scale = x[rows].mean(0), x[rows].std(0)
    scale[scale < 1e-9] = 1.0
    # One intercept per group (its one-hot column scaled up, so the L2 penalty barely touches it): groups differ
    # in accept rate and in how their texts were extracted, and the head must learn neither.
    coef = LogisticRegression(C=cfg.accept_c, class_weight="balanced", fit_intercept=False, max_iter=3000).fit(
        np.hstack([(x[rows] - mean) / scale, 10.0 * onehot]), y).coef_[0]
    w = coef[:x.shape[1]].astype(float)
    logit = ((x - mean) / scale) @ w
    shift, gain = float(logit[full].mean()), max(float(logit[full].std()), 1e-9)
    arrays = {"acc_mean": mean, "acc_scale": scale, "acc_weights": w, "acc_cap": cap, "acc_floor": floor,
              "acc_shift": np.array([shift]), "acc_gain": np.array([gain])}
    return arrays, (logit - shift) / gain


def decided_in_mixed_groups(accepted: list[Optional[bool]], groups: Sequence[str],
                            among: Optional[np.ndarray] = None) -> tuple[list[int], np.ndarray]:
    """Rows with a decision (and in `among`, a mask, when given) of the groups holding both decisions, and their
    group one-hot columns (one intercept per group): a group of accepts only says nothing about rejects."""
    g = np.asarray(groups)
    keep = [k for k, a in enumerate(accepted) if a is not None and (among is None or among[k])]
    classes: dict[str, set] = {}
    for k in keep:
        classes.setdefault(g[k], set()).add(accepted[k])
    names = sorted(n for n, c in classes.items() if len(c) == 2)
    rows = [k for k in keep if g[k] in names]
    return rows, np.array([[g[k] == n for n in names] for k in rows], dtype=float).reshape(len(rows), len(names))


def _accept_slope(z: np.ndarray, accepted: list[Optional[bool]], groups: Sequence[str]) -> float:
    """Slope of P(accept) in z, from groups holding both decisions (each group its own intercept)."""
    from sklearn.linear_model import LogisticRegression

    rows, onehot = decided_in_mixed_groups(accepted, groups)
    if not rows:
        return 1.0
    x = np.hstack([z[rows, None], onehot])
    y = np.array([accepted[k] for k in rows], dtype=bool)
    model = LogisticRegression(C=100.0, fit_intercept=False, class_weight="balanced", max_iter=1000).fit(x, y)
    return float(max(model.coef_[0][0], 0.05))  # never a falling accept curve


def _bias_for_prior(z: np.ndarray, slope: float, prior: float) -> float:
    lo, hi = -50.0, 50.0
    for _ in range(100):  # bisection: mean sigmoid(slope * z + b) is increasing in b
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-np.clip(slope * z + mid, -50, 50)))) < prior:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def fit_reward_model(rows: Sequence[Mapping[str, Any]], cfg, cache_dir: Optional[Path] = None):
    """Train a RewardModel on dataset rows (see model.RewardModel.train)."""
    from .model import RewardModel, featurize

    start = time.monotonic()
    usable = [r for r in rows if row_ratings(r) and (cfg.include_abstract_only or not r.get("abstract_only"))]
    if len(usable) < 10:
        raise InputError(f"the reward model needs at least 10 rows with ratings; got {len(usable)}")
    texts = [model_text(r) for r in usable]
    groups = [row_group(r) for r in usable]
    means = np.array([np.mean(row_ratings(r)) for r in usable])
    pct = group_percentiles(means, groups)
    full = np.array([not r.get("abstract_only") for r in usable])
    rng = np.random.default_rng(cfg.seed)
    table_texts = [texts[k] for k in rng.permutation(len(texts))[:3000] if full[k]]
    bigrams = common_bigrams(table_texts, cfg.bigram_table)
    table_id = hashlib.sha256("\n".join(sorted(bigrams)).encode()).hexdigest()[:16]
    # Both caches are keyed by content: a changed text, feature definition or bigram table is a miss.
    x, hand = featurize(texts, cfg, bigrams, table_id, cache_dir=cache_dir or default_cache_dir())
    feature_seconds = time.monotonic() - start
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    xs = (x - mean) / scale
    # L2 strength: pick on a 20% paper split, by mean within-group Spearman.
    val = rng.random(len(usable)) < 0.2
    tried = {}
    for c in cfg.c_grid:
        w = fit_ranker(xs[~val], pct[~val], [groups[k] for k in np.nonzero(~val)[0]], cfg.objective, c,
                       cfg.pairs_per_paper, cfg.min_gap, cfg.seed)
        tried[c] = within_group_spearman(xs[val] @ w, pct[val], [groups[k] for k in np.nonzero(val)[0]])
    best_c = max(tried, key=lambda c: -np.inf if np.isnan(tried[c]) else tried[c])
    w = fit_ranker(xs, pct, groups, cfg.objective, best_c, cfg.pairs_per_paper, cfg.min_gap, cfg.seed)
    s = xs @ w
    # The ranker's score is put on unit variance before the head is added, so accept_weight means what it says
    # (its raw spread is set by the L2 strength: 0.07 at the default's C).
    ref_s = s[full] if full.any() else s
    rank_shift, rank_gain = float(ref_s.mean()), max(float(ref_s.std()), 1e-9)
    s = (s - rank_shift) / rank_gain
    accepted = [row_accept(r) for r in usable]
    head, head_scores = ({}, None)
    if cfg.accept_weight:
        xa = accept_features(hand, [raw_word_count(r) for r in usable])
        head, head_scores = fit_accept_head(xa, accepted, groups, full, cfg)
    if head_scores is not None:
        s = s + cfg.accept_weight * head_scores
    gain = 1.0 / max(float(s[full].std()), 1e-9) if full.any() else 1.0
    shift = -float(s[full].mean()) * gain if full.any() else 0.0
    z = s * gain + shift
    # Guard edges from real full-text papers.
    names = list(STRUCTURE) + list(INTEGRITY)
    ref = hand[full] if full.any() else hand
    edges, scales = [], []
    for name, direction in GUARD_DIRECTIONS.items():
        v = ref[:, names.index(name)]
        edge = float(np.quantile(v, 1 - cfg.guard_quantile if direction > 0 else cfg.guard_quantile))
        edges.append(edge)
        scales.append(max(abs(float(np.median(v)) - edge), 1e-6))
    cap = float(np.quantile(ref[:, names.index("log_words")], cfg.completeness_quantile))
    arrays: dict[str, np.ndarray] = {"mean": mean, "scale": scale, "weights": w, "z_gain": np.array([gain]),
                                     "z_shift": np.array([shift]), "guard_edge": np.array(edges),
                                     "guard_scale": np.array(scales), "completeness_cap": np.array([cap]),
                                     "rank_shift": np.array([rank_shift]), "rank_gain": np.array([rank_gain]), **head}
    model = RewardModel(cfg, arrays, bigrams, {"bigram_table_id": table_id})
    penalty, _ = model.guard(hand)
    zp = (z - penalty)[full] if full.any() else z - penalty
    # Rating map: quantiles of z against quantiles of the mean ratings, put on the 1-10 scale.
    top = np.array([float(r.get("rating_max") or 10) for r in usable])
    ratings10 = 1 + (means - 1) * 9 / np.maximum(top - 1, 1)
    q = np.linspace(0, 1, 101)
    z_grid = np.maximum.accumulate(np.quantile(zp, q) + np.arange(101) * 1e-9)
    # Mean ratings take few distinct values, so their quantiles have flat runs; a small ramp keeps the map
    # strictly increasing, so a lower z always means a lower reward (ties would hide a worse variant).
    rating_grid = np.quantile(ratings10, q) + np.linspace(0.0, 0.05, 101)
    arrays.update(z_grid=z_grid, rating_grid=rating_grid, train_z=np.sort(zp))
    slope = _accept_slope(z - penalty, accepted, groups)
    arrays.update(accept_slope=np.array([slope]), accept_bias=np.array([_bias_for_prior(zp, slope, cfg.accept_rate_prior)]))
    labelled = [a for a in accepted if a is not None]
    model.meta.update({
        "n_train": len(usable), "n_full_text": int(full.sum()), "groups": {g: groups.count(g) for g in sorted(set(groups))},
        "train_accept_rate": round(float(np.mean(labelled)), 4) if labelled else None,
        "c": best_c, "validation_spearman_by_c": {str(k): None if np.isnan(v) else round(v, 4) for k, v in tried.items()},
        "n_features": int(x.shape[1]), "feature_seconds": round(feature_seconds, 1),
        "train_seconds": round(time.monotonic() - start, 1), "accept_slope": round(slope, 4),
        "top_weights": _top_weights(cfg.feature_names(), w), "accept_head": bool(head),
        "accept_head_weights": _top_weights(list(STRUCTURE) + list(INTEGRITY) + list(ACCEPT_LENGTH),
                                            head["acc_weights"]) if head else {}})
    log.info("reward model: %d papers in %d groups, C %.3g, validation Spearman %.3f", len(usable),
             len(set(groups)), best_c, tried[best_c])
    return model


def _top_weights(names: list[str], w: np.ndarray, k: int = 12) -> dict[str, float]:
    """The largest standardised weights of the hand-made features (embedding dims are not readable)."""
    pairs = [(n, float(v)) for n, v in zip(names, w) if not n.startswith("emb")]
    return {n: round(v, 4) for n, v in sorted(pairs, key=lambda p: -abs(p[1]))[:k]}
