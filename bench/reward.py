"""Bench: the reward model's scoring speed on full papers, and its held-out metrics (the model card's numbers).

    nice .venv/bin/python bench/reward.py --speed-only --n 100     # papers/s, a minute or two
    nice .venv/bin/python bench/reward.py                          # + held-out year, hacking suite, leak probe

Speed: RewardModel.score on --n NeurIPS 2025 full texts (reviews_real/papers.jsonl: raw PDF parses, mean 14k
words, references and appendix included) with no embedding cache, in --workers processes of --threads torch
threads each. Per paper the model reads: the raw text once (injection finder), the cleaned main body (cue
stripping cuts references, appendix and checklist) for the structure and integrity statistics, and
max_chunks x chunk_tokens MiniLM tokens spread over that body (8 x 128 by default). Target >= 5 papers/s on
2 cores. On a shared machine the wall clock measures the neighbours too; the CPU seconds are printed as well.

Metrics: `data.reward_training.train_with_card` with the default config: a model trained on every shared
source except NeurIPS 2025 is scored on NeurIPS 2025 (Spearman with the mean rating, accept AUC, beside
constant, one human and length-only rows, with bootstrap intervals), then the hacking suite and the leak probe
on the same held-out papers; the card is written to --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def full_texts(n: int) -> list[str]:
    out = []
    for line in (DATA / "reviews_real" / "papers.jsonl").open(encoding="utf-8"):
        p = json.loads(line)
        out.append(f"# {p['title']}\n\n## Abstract\n\n{p.get('abstract') or ''}\n\n{p['text']}")
        if len(out) == n:
            break
    return out


def _score_part(args) -> tuple[float, int]:
    model_dir, texts, threads = args
    import torch

    torch.set_num_threads(threads)
    from cycleresearcher.reward import RewardModel

    model = RewardModel.load(Path(model_dir))
    model.score(texts[:2])  # warm-up: model load and first-call allocations are not scoring
    c0 = time.process_time()
    model.score(texts)
    return time.process_time() - c0, len(texts)


def speed(model_dir: Path, n: int, workers: int, threads: int) -> dict:
    texts = full_texts(n)
    parts = [(str(model_dir), texts[i::workers], threads) for i in range(workers)]
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    if workers == 1:
        results = [_score_part(parts[0])]
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_score_part, parts)
    wall = time.monotonic() - t0
    cpu = sum(r[0] for r in results)
    words = sum(len(t.split()) for t in texts) / len(texts)
    return {"papers": len(texts), "mean_words": round(words), "wall_seconds": round(wall, 1),
            "papers_per_s_wall": round(len(texts) / wall, 2), "cpu_seconds": round(cpu, 1),
            "cpu_seconds_per_paper": round(cpu / len(texts), 3),
            "papers_per_s_if_cores_free": round(len(texts) / (cpu / (workers * threads)), 2),
            "workers": workers, "threads": threads, "load_before": round(load, 1), "cpus": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: the default model)")
    ap.add_argument("--n", type=int, default=100, help="full-text papers scored for the speed figure")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--probe-papers", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("runs/reward-bench"), help="card folder for the metrics")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from cycleresearcher.data.reward_training import ensure_default_reward_model, train_with_card

    if not args.speed_only:
        t0 = time.monotonic()
        card = train_with_card(args.out, probe_papers=args.probe_papers)
        print(f"card written to {args.out} in {time.monotonic() - t0:.0f} s")
        print(json.dumps({k: card[k] for k in ("heldout", "leak_probe", "hacking_suite") if k in card}, indent=1))
    model_dir = args.model or (args.out if not args.speed_only else ensure_default_reward_model())
    s = speed(model_dir, args.n, args.workers, args.threads)
    print(f"SPEED: {s['papers_per_s_wall']} papers/s wall ({s['papers']} papers, mean {s['mean_words']} words, "
          f"{s['workers']} workers x {s['threads']} torch threads, 1-min load before {s['load_before']} on "
          f"{s['cpus']} CPUs); {s['cpu_seconds_per_paper']} CPU s a paper = {s['papers_per_s_if_cores_free']} "
          f"papers/s if the cores were free; target >= 5")


if __name__ == "__main__":
    main()
