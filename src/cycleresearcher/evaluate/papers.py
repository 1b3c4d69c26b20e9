"""Generated-paper evaluation: every round's papers of a cycle run scored by a judge, per round the mean and
max with bootstrap intervals.

    cycleresearcher eval papers runs/demo --judge reward:runs/reward
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import InputError
from ..io import read_jsonl
from .metrics import (Weights, _as_weights, _out, bootstrap_ci, bootstrap_weights, difference_ci, mean_ci,
                      weighted_mean)

log = logging.getLogger(__name__)


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
    from ..schema import Paper

    run_dir = Path(run_dir)
    rounds = sorted(p for p in run_dir.glob("round-*") if (p / "papers.jsonl").exists())
    if not rounds:
        raise InputError(f"no round-*/papers.jsonl under {run_dir}")
    training = _training_reward(run_dir)
    same = None if training is None else training.strip() == judge_spec.strip()
    if same:
        log.warning("the judge %s is the reward the run was trained on; its scores flatter the policy", judge_spec)
    from ..judges import get_judge

    judge = get_judge(judge_spec, n_reviewers=n_reviewers)
    per_round = []
    for k, rdir in enumerate(rounds):
        papers = [Paper.from_dict(row) for row in read_jsonl(rdir / "papers.jsonl")]
        verdicts = judge.score(papers)
        scores = np.array([v.score for v in verdicts if v.score is not None], dtype=float)
        entry: dict[str, Any] = {"round": rdir.name, "n_papers": len(papers), "n_scored": int(len(scores))}
        if len(scores):
            w = bootstrap_weights(len(scores), n_resamples, seed + k)
            entry["mean"] = bootstrap_ci(lambda ww: weighted_mean(scores, ww), len(scores), weights=w).to_dict()
            entry["max"] = bootstrap_ci(lambda ww: _weighted_max(scores, ww), len(scores), weights=w).to_dict()
        per_round.append(entry)
    heldout = _heldout(run_dir, judge)
    return {"run_dir": str(run_dir), "judge": judge_spec, "training_reward": training,
            "judge_is_training_reward": same, "rounds": per_round, **heldout,
            "note": "bootstrap intervals for a maximum are rough (the max of a resample never exceeds the sample's)"}


def _heldout(run_dir: Path, judge) -> dict[str, Any]:
    """The held-out papers of every policy (RUN_DIR/heldout/<label>/papers.jsonl) judged the way the run's
    report judges them (same chunks, same bootstrap seeds), so the figures can be checked or re-judged."""
    from ..schema import Paper
    from ..train.rundir import RunDir, label_order

    rd = RunDir(run_dir)
    out, scores = [], {}
    for label in rd.heldout_labels():
        papers = [Paper.from_dict(row) for row in read_jsonl(rd.heldout_dir(label) / "papers.jsonl")]
        if not papers:
            continue
        verdicts = [v for start in range(0, len(papers), 8) for v in judge.score(papers[start:start + 8])]
        scores[label] = [v.score for v in verdicts if v.score is not None]
        out.append({"label": label, "n_papers": len(papers), "judge_mean": mean_ci(scores[label],
                                                                                     seed=label_order(label)[1])})
    if not out:
        return {}
    first, last = out[0]["label"], out[-1]["label"]
    return {"heldout": out, "heldout_difference": {"from": first, "to": last,
                                                   **(difference_ci(scores[first], scores[last], seed=0) or {})}}


def _weighted_max(values: np.ndarray, weights: Weights):
    w, batched = _as_weights(weights, len(values))
    masked = np.where(w > 0, values[None, :], -np.inf)
    return _out(masked.max(1), batched)
