"""The leak probe: can the decision be read off camera-ready cues alone? It must not, after cleaning.

    report = leak_probe(texts, accepted)            # {"auc": 0.53, "ci": [..], "n": .., "cues": {...}}

Accepted papers in the shared data are camera-ready versions and rejected ones are submissions, so URLs to real
repositories, acknowledgments, "upon acceptance", conference footers and the like give the decision away. The
probe counts those cues in each text, fits a logistic regression on the counts alone and reports its
cross-validated ROC-AUC. Run it on raw texts (it should find the leak) and on cleaned ones (it should not:
AUC <= 0.60 is the target).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from .stats import bootstrap, roc_auc

CUES = {
    "url": r"https?://|\bwww\.|\[URL\]",
    "github": r"github",
    "anonymous": r"anonym",
    "acknowledg": r"acknowledg",
    "thank": r"\bthank",
    "grant_funding": r"\bgrants?\b|\bfund(?:ed|ing)\b",
    "email": r"[\w.+-]+@[\w-]+\.",
    "camera_ready": r"camera[- ]ready",
    "upon_acceptance": r"upon acceptance|after acceptance|after the review",
    "will_release": r"will (?:be )?(?:made )?(?:publicly )?(?:release|available|open[- ]source)",
    "code_available": r"code (?:is|are) (?:publicly )?available|available at",
    "preprint": r"\bpreprint\b",
    "under_review": r"under review|double-blind|submitted to",
    "conference": r"\bconference\b|\bproceedings\b",
    "venue_name": r"\bneurips\b|\bnips\b|\biclr\b",
    "equal_contribution": r"equal contribution|contributed equally|corresponding author",
    "supplementary": r"supplementary|supplemental|appendix",
    "line_number_lines": r"(?m)^\s*\d{1,4}\s*$",
    "checklist": r"checklist",
}
_COMPILED = {k: re.compile(v, re.I) for k, v in CUES.items()}


def cue_counts(text: str) -> list[int]:
    """How often each cue of CUES occurs in `text` (in the order of CUES)."""
    return [len(p.findall(text)) for p in _COMPILED.values()]


def leak_probe(texts: Sequence[str], accepted: Sequence[bool], seed: int = 0, folds: int = 5,
               n_resamples: int = 1000) -> dict[str, Any]:
    """Cross-validated ROC-AUC (with a bootstrap 95% interval) of a logistic regression that predicts the
    decision from the cue counts alone, and each cue's rate among accepted and rejected papers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(accepted, bool)
    x = np.log1p(np.array([cue_counts(t) for t in texts], dtype=float))
    k = int(min(folds, y.sum(), (~y).sum()))
    if k < 2:
        raise ValueError("the leak probe needs at least 2 accepted and 2 rejected papers")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    pred = cross_val_predict(model, x, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                             method="predict_proba")[:, 1]
    auc, lo, hi = bootstrap(lambda i: roc_auc(pred[i], y[i]), len(y), n_resamples, seed)
    present = x > 0
    rates = {name: {"accepted": round(float(present[y, i].mean()), 4), "rejected": round(float(present[~y, i].mean()), 4)}
             for i, name in enumerate(CUES)}
    return {"auc": round(auc, 4), "ci": [round(lo, 4), round(hi, 4)], "n": int(len(y)),
            "n_rejected": int((~y).sum()), "cue_rates": rates}
