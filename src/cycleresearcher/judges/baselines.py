"""The honest baselines every evaluation prints beside a judge: a constant (the train mean rating) and a
length-only model (log word count), fitted on a train split; plus the dataset-row helpers they share.

On public ICLR data the constant already beats a single human reviewer on proxy MAE/MSE, and length alone
ranks accepted above rejected papers about as well as a GPT-4o reviewer (DESIGN.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..paper_text import judge_text
from ..schema import decision_is_accept


def fit_threshold(scores: Sequence[float], accept: Sequence[bool]) -> float:
    """The threshold t maximising the accuracy of `accept = score > t` (midpoints between distinct scores)."""
    s, y = np.asarray(scores, float), np.asarray(accept, bool)
    u = np.unique(s)
    cands = np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2, [u[-1] + 1.0]])
    acc = [np.mean((s > t) == y) for t in cands]
    return float(cands[int(np.argmax(acc))])


def accepted(decision: Any) -> bool:
    """A dataset row's decision as a bool (True, "Accept (poster)", ... are accepts)."""
    return bool(decision_is_accept(decision))


def row_ratings(row: Mapping[str, Any]) -> list[float]:
    return [float(r) for r in (row.get("ratings") or []) if r is not None]


def human_mean_rating(row: Mapping[str, Any]) -> float:
    r = row_ratings(row)
    return float(np.mean(r)) if r else float(row.get("mean_rating") or math.nan)


def length_features(texts: Sequence[str]) -> np.ndarray:
    """(n, 1): log(1 + whitespace word count), the only input of the length baseline."""
    return np.log1p(np.array([[len(t.split())] for t in texts], dtype=float))


def row_text(row: Mapping[str, Any]) -> str:
    return judge_text(row)


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

        rows = [r for r in train_rows if row_ratings(r) and r.get("decision") is not None]
        if len(rows) < 2:
            raise InputError(f"the baselines need train papers with ratings and decisions; got {len(rows)}")
        means = np.array([human_mean_rating(r) for r in rows])
        acc = np.array([accepted(r["decision"]) for r in rows])
        if acc.all() or not acc.any():
            raise InputError("the train split has only one decision class; cannot fit the baselines")
        indiv = np.array([x for r in rows for x in row_ratings(r)])
        indiv_acc = np.array([a for r, a in zip(rows, acc) for _ in row_ratings(r)])
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


