"""The demo: the whole cycle on the embedded model, in minutes on a 2-core laptop.

    make demo            # or: cycleresearcher demo --out runs/demo

It trains the scalar reward model on the shared ICLR reviews (when ../shared/data is there; a few seconds with
cached embeddings), then runs 2 rounds of: sample 2 papers for each of 3 topics with SmolLM2-135M, score them,
pair best against worst, and train SimPO + NLL with LoRA adapters (merged into each round's checkpoint).
The run resumes if it was interrupted; `--fresh` starts over.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Optional

from .errors import InputError
from .io import peak_rss_mb
from .train.cycle import CycleConfig, run_cycle
from .train.report import write_report

log = logging.getLogger(__name__)


def find_shared_data(start: Optional[Path] = None) -> Optional[Path]:
    """../shared/data (or shared/data) seen from the working directory or this checkout, if present."""
    env = os.environ.get("CYCLERESEARCHER_DATA")
    if env:
        return Path(env)
    roots = [Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parents[2]]
    for root in roots:
        for base in [root, *root.parents][:4]:
            for candidate in (base / "shared" / "data", base.parent / "shared" / "data"):
                if (candidate / "topics.txt").exists():
                    return candidate
    return None


def train_demo_reward(data: Path, out: Path) -> Path:
    """Fit the scalar reward model on the ICLR reviews (title + abstract) once; reuse it afterwards."""
    from .reward import RewardModel

    if (out / "config.json").exists():
        return out
    rows = []
    with open(data / "reviews_real" / "reviews.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            ratings = [r["rating"] for r in row.get("reviews", []) if r.get("rating") is not None]
            if ratings and row.get("decision"):
                rows.append({"title": row["title"], "abstract": row.get("abstract") or "",
                             "ratings": ratings, "decision": row["decision"]})
    RewardModel.train(rows).save(out)
    return out


def run_demo(out: Path, data: Optional[Path] = None, rounds: int = 2, samples: int = 2, n_prompts: int = 3,
             reviewer: str = "auto", fresh: bool = False):
    """Run (or resume) the demo; returns (report path, round summaries, seconds, peak RSS in MB)."""
    start = time.monotonic()
    out = Path(out)
    data = data or find_shared_data()
    if data is None or not (data / "topics.txt").exists():
        raise InputError("the demo needs the shared data folder (topics.txt, sample.bib); pass --data DIR")
    if fresh and out.exists():
        shutil.rmtree(out)
    if reviewer == "auto":
        if (data / "reviews_real" / "reviews.jsonl").exists():
            reviewer = "reward:" + str(train_demo_reward(data, out.parent / f"{out.name}-reward-model"))
        else:
            reviewer = "local"
    config = CycleConfig.preset("demo", reviewer=reviewer, prompts_file=str(data / "topics.txt"),
                                bib=str(data / "sample.bib"), rounds=rounds, samples=samples, max_prompts=n_prompts,
                                prompt_batch=n_prompts)
    resume = (out / "config.yaml").exists()
    run_cycle(out, None if resume else config, resume=resume, progress=True)
    report, summaries = write_report(out)
    return report, summaries, time.monotonic() - start, peak_rss_mb()
