"""Bench: the scalar reward model's speed (papers/s on CPU) and its test metrics beside the baselines.

    .venv/bin/python bench/reward.py                    # 200 full-text papers + ICLR 2017 -> 2018, ~10 min on 2 cores
    .venv/bin/python bench/reward.py --n 50 --skip-metrics   # speed only

Speed: RewardModel.score on --n NeurIPS 2025 full-text papers (reviews_real/papers.jsonl, mean 14k words),
with an empty embedding cache, torch limited to --threads threads. Target: >= 20 papers/s on 2 cores.
Metrics: trained on ICLR 2017 (489 papers), tested on ICLR 2018 (892 papers): a split by year, so a model that
only knows its own year's papers does not look good. ICLR has no full text: the input is title + abstract.
Printed for the model with and without the length features, and for the constant, single-human and
length-only baselines, each with a bootstrap 95% interval.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from cycleresearcher.evaluate import METRICS, evaluate_reviewer  # noqa: E402
from cycleresearcher.reward import RewardConfig, RewardModel  # noqa: E402

log = logging.getLogger("bench.reward")


def iclr_rows() -> list[dict]:
    """ICLR 2017+2018 papers in the Review dataset's columns (text is empty: no full text exists)."""
    rows = []
    for line in (DATA / "reviews_real" / "reviews.jsonl").open(encoding="utf-8"):
        r = json.loads(line)
        ratings = [int(v["rating"]) for v in r["reviews"] if v.get("rating") is not None]
        rows.append({"paper_id": r["paper_id"], "title": r["title"], "abstract": r["abstract"], "text": "",
                     "venue": r["venue"], "year": r["year"], "decision": r["decision"], "ratings": ratings,
                     "mean_rating": sum(ratings) / len(ratings) if ratings else None, "n_reviews": len(ratings)})
    return rows


def full_texts(n: int) -> list[str]:
    out = []
    for line in (DATA / "reviews_real" / "papers.jsonl").open(encoding="utf-8"):
        p = json.loads(line)
        out.append(f"{p['title']}\n\n{p.get('abstract') or ''}\n\n{p['text']}")
        if len(out) == n:
            break
    return out


def print_report(title: str, report: dict) -> None:
    print(f"\n{title}: {report['n_papers']} test papers, accept rate {report['accept_rate']:.3f}, "
          f"{report['n_resamples']} bootstrap resamples, excluded {report['excluded']}")
    names = list(report["systems"])
    print(f"{'metric':<18}" + "".join(f"{n[:24]:>26}" for n in names))
    for m in METRICS:
        cells = []
        for n in names:
            e = report["systems"][n][m]
            if e is None or e["value"] is None:
                cells.append(f"{'n/a':>26}")
            else:
                lo = "nan" if e["ci_low"] is None else f"{e['ci_low']:.3f}"
                hi = "nan" if e["ci_high"] is None else f"{e['ci_high']:.3f}"
                cells.append(f"{e['value']:>8.3f} [{lo}, {hi}]".rjust(26))
        print(f"{m:<18}" + "".join(cells))
    for key, comp in report["comparisons"].items():
        parts = [f"{k} {v['value']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]" for k, v in comp.items()
                 if v["value"] is not None]
        print(f"  {key}: " + "; ".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="full-text papers scored for the speed figure")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--chunk-tokens", type=int, default=RewardConfig.chunk_tokens)
    ap.add_argument("--max-chunks", type=int, default=RewardConfig.max_chunks)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--cache", type=Path, default=None, help="embedding cache for the metrics part (reused)")
    ap.add_argument("--skip-metrics", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    torch.set_num_threads(args.threads)
    cfg = RewardConfig(chunk_tokens=args.chunk_tokens, max_chunks=args.max_chunks)
    cache = args.cache or Path(tempfile.gettempdir()) / "cycleresearcher-bench-embeddings"
    rows = iclr_rows()
    train = [r for r in rows if r["year"] == 2017]
    test = [r for r in rows if r["year"] == 2018]

    t0 = time.monotonic()
    model = RewardModel.train(train, cfg, cache_dir=cache)
    print(f"trained on {len(train)} ICLR 2017 papers in {time.monotonic() - t0:.1f} s "
          f"(chunk_tokens={cfg.chunk_tokens}, max_chunks={cfg.max_chunks}); meta: "
          + json.dumps({k: v for k, v in model.meta.items() if k != "features"}))

    texts = full_texts(args.n)
    words = sum(len(t.split()) for t in texts) / len(texts)
    with tempfile.TemporaryDirectory() as empty_cache:
        model.score(texts[:4], cache_dir=Path(empty_cache) / "warm")  # warm-up: first-call allocations
        load_before = os.getloadavg()[0]
        t0, c0 = time.monotonic(), time.process_time()
        model.score(texts, cache_dir=Path(empty_cache) / "run")
        dt, cpu = time.monotonic() - t0, time.process_time() - c0
    print(f"\nSPEED: {len(texts) / dt:.1f} papers/s ({len(texts)} NeurIPS full-text papers, mean {words:.0f} words, "
          f"{dt:.1f} s, torch threads {torch.get_num_threads()}, empty embedding cache, "
          f"1-min load average before {load_before:.1f} on {os.cpu_count()} CPUs); target >= 20 papers/s")
    # On a shared machine the wall clock mostly measures the neighbours; CPU seconds say what 2 free cores do.
    print(f"       {cpu:.1f} CPU s for {len(texts)} papers: {len(texts) / (cpu / args.threads):.1f} papers/s if "
          f"{args.threads} cores were free")

    if args.skip_metrics:
        return
    preds = [dict(s, paper_id=r["paper_id"], mean_rating=s["reward"]) for r, s in
             zip(test, model.score(test, cache_dir=cache))]
    print_report("reward model (embedding + length features), ICLR 2017 -> 2018",
                 evaluate_reviewer(preds, test, train, n_resamples=args.resamples, name="reward"))
    plain = RewardModel.train(train, RewardConfig(chunk_tokens=args.chunk_tokens, max_chunks=args.max_chunks,
                                                  use_length=False), cache_dir=cache)
    preds = [dict(s, paper_id=r["paper_id"], mean_rating=s["reward"]) for r, s in
             zip(test, plain.score(test, cache_dir=cache))]
    report = evaluate_reviewer(preds, test, train, n_resamples=args.resamples, name="reward_no_length")
    print_report("reward model (embedding only), ICLR 2017 -> 2018", report)


if __name__ == "__main__":
    main()
