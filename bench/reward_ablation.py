"""Bench: which reward-model features pay, measured on development splits that never touch the held-out year.

    nice .venv/bin/python bench/reward_ablation.py                 # all rows below, ~30 min on 2 cores, cached
    nice .venv/bin/python bench/reward_ablation.py --configs full no_length

Splits (NeurIPS 2025 is the held-out year; it is not read here, so the defaults are not tuned on it):
  A  train NeurIPS 2023 (main + datasets track)  ->  test NeurIPS 2024 (3,923 papers, all accepted): Spearman
  B  train NeurIPS 2024                           ->  test NeurIPS 2023 main (174 rejects): Spearman and AUC
  C  5 folds over NeurIPS 2023 (main + db, 190 rejects), each trained on the other folds + NeurIPS 2024:
     out-of-fold Spearman and AUC. The only split whose training data holds rejects, so the only one that
     measures the accept head (B trains on 2024, which has none, so its rows are the ranker alone); the
     default accept_weight is the largest Spearman on C whose AUC matches length-only there.
Each row is one RewardConfig change from the default; `length` rows are log word counts of the cleaned text
(what the model reads) and of the raw text. Intervals: bootstrap 95% over test papers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from cycleresearcher.data.fulltext import load_fulltext_rows  # noqa: E402
from cycleresearcher.embed import default_cache_dir  # noqa: E402
from cycleresearcher.reward import RewardConfig, RewardModel  # noqa: E402
from cycleresearcher.reward.stats import bootstrap, roc_auc, spearman  # noqa: E402

CONFIGS = {
    "full": {},
    "no_embedding": {"use_embedding": False},
    "no_structure": {"use_structure": False},
    "no_integrity": {"use_integrity": False},
    "no_length": {"use_length": False},
    "embedding_only": {"use_structure": False, "use_integrity": False},
    "pointwise": {"objective": "pointwise"},
    "with_iclr_abstracts": {"include_abstract_only": True},
    "no_accept_head": {"accept_weight": 0.0},
    "accept_weight_1": {"accept_weight": 1.0},
    "accept_weight_3": {"accept_weight": 3.0},
    "length_cap_0.9": {"length_cap_quantile": 0.9},
}


def fmt(est) -> str:
    v, lo, hi = est
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def evaluate(scores: np.ndarray, rows: list[dict], resamples: int) -> dict:
    mean = np.array([r["mean_rating"] for r in rows])
    acc = np.array([r["decision"] == "Accept" for r in rows])
    out = {"spearman": bootstrap(lambda i: spearman(scores[i], mean[i]), len(rows), resamples)}
    if (~acc).any():
        out["auc"] = bootstrap(lambda i: roc_auc(scores[i], acc[i]), len(rows), resamples)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS))
    ap.add_argument("--splits", nargs="*", default=["A", "B", "C"])
    ap.add_argument("--resamples", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    rows = [r for r in load_fulltext_rows() if not r["group"].startswith("NeurIPS-2025")]
    iclr = [r for r in rows if r["abstract_only"]]
    nips = [r for r in rows if not r["abstract_only"]]
    y2023 = [r for r in nips if r["year"] == 2023]
    fold = np.random.default_rng(0).integers(0, 5, len(y2023))
    folds = [([r for r, f in zip(y2023, fold) if f != k] + [r for r in nips if r["year"] == 2024],
              [r for r, f in zip(y2023, fold) if f == k]) for k in range(5)]
    splits = {
        "A": [([r for r in nips if r["year"] == 2023], [r for r in nips if r["year"] == 2024])],
        "B": [([r for r in nips if r["year"] == 2024], [r for r in nips if r["group"] == "NeurIPS-2023-main"])],
        "C": folds,
    }
    results: dict = {}
    for split in args.splits:
        parts = splits[split]
        test = [r for _, t in parts for r in t]
        words = np.log1p([len(r["text"].split()) for r in test])
        raw = np.log1p([r["raw_words"] for r in test])
        results[(split, "length_clean")] = evaluate(words, test, args.resamples)
        results[(split, "length_raw")] = evaluate(raw, test, args.resamples)
        for name in args.configs:
            cfg = replace(RewardConfig(), **CONFIGS[name])
            t0 = time.monotonic()
            scores, cs = [], []
            for train, part in parts:  # out-of-fold scores, in the order of `test`
                model = RewardModel.train(train + (iclr if cfg.include_abstract_only else []), cfg)
                scores += [s["reward"] for s in model.score(part, cache_dir=default_cache_dir())]
                cs.append(model.meta["c"])
            fit_s = time.monotonic() - t0
            res = evaluate(np.array(scores), test, args.resamples)
            res["fit_seconds"] = round(fit_s, 1)
            res["c"] = cs[0] if len(set(cs)) == 1 else cs
            results[(split, name)] = res
            print(f"{split} {name:<22} spearman {fmt(res['spearman'])}"
                  + (f"  auc {fmt(res['auc'])}" if "auc" in res else "") + f"  fit {fit_s:.0f}s C={res['c']}",
                  flush=True)
    heads = [("A", "spearman"), ("B", "spearman"), ("B", "auc"), ("C", "spearman"), ("C", "auc")]
    heads = [h for h in heads if h[0] in args.splits]
    print(f"\n{'config':<22}" + "".join(f"{f'{s}: {m}':>28}" for s, m in heads))
    for name in ["length_clean", "length_raw"] + args.configs:
        cells = [results.get((s, name), {}).get(m) for s, m in heads]
        print(f"{name:<22}" + "".join(f"{fmt(c) if c else '':>28}" for c in cells))
    if args.out:
        args.out.write_text(json.dumps({f"{k[0]}:{k[1]}": v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
