"""The demo: the whole cycle on the embedded model, in minutes on a 2-core laptop (preset `demo`).

    make demo            # or: cycleresearcher demo --out runs/demo

What runs (presets/demo.yaml; the README's "The demo" section says why):
- the policy, SmolLM2-135M, writes the first stages only (task `idea`: motivation, main idea, title, abstract);
- a short supervised warm start on the best-rated ICLR 2017-18 papers of the shared data, as the paper SFTs its
  policy before the loop;
- the training reward is the default reward model (reward v2, trained on the NeurIPS full texts, shipped in the
  package and cached, never retrained per run);
- the held-out judge is a second reward model trained on another venue (ICLR 2017-18 abstracts, minus the
  warm-start papers) so the policy is judged by a model it was never trained against;
- K samples per train prompt, best vs worst become SimPO + NLL pairs, LoRA, 2 rounds; held-out prompts are
  written by every policy (initial, warm start = r00, r01, r02) and judged.
The run resumes if it was interrupted; `--fresh` starts over.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Optional

from .data.fulltext import shared_data_dir as find_shared_data
from .errors import InputError
from .io import home, peak_rss_mb, replace_dir_atomic
from .train.cycle import CycleConfig, run_cycle
from .train.report import write_report

log = logging.getLogger(__name__)

__all__ = ["find_shared_data", "demo_judge_rows", "ensure_demo_judge", "run_demo"]

JUDGE_VERSION = 1  # bump when the judge's rows or config change: the cached judge is keyed by it


def demo_judge_rows(data: Path, exclude_titles: set[str]) -> list[dict[str, Any]]:
    """ICLR 2017-18 papers (title + abstract, ratings, decision) as reward-model rows, minus `exclude_titles`
    (the warm-start papers: the judge must not have been fitted on what the policy was taught to copy)."""
    rows = []
    with open(data / "reviews_real" / "reviews.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            ratings = [r["rating"] for r in row.get("reviews", []) if r.get("rating") is not None]
            title = " ".join(str(row.get("title") or "").split())
            if ratings and row.get("decision") and title.lower() not in exclude_titles:
                rows.append({"title": title, "abstract": row.get("abstract") or "", "ratings": ratings,
                             "decision": row["decision"], "group": f"ICLR-{row.get('year') or ''}"})
    return rows


def ensure_demo_judge(data: Path, warm_start_source: str, n_warm: int) -> Path:
    """The demo's independent judge, under io.home()/reward/demo-judge-vN-<n_warm>: copied from the package,
    which ships the one for the preset's warm start (~450 kB), or trained once (about 2 minutes)."""
    from .data.reward_training import install_reward_model
    from .reward import RewardConfig, RewardModel, RewardModelError
    from .train.warmstart import best_records

    out = home() / "reward" / f"demo-judge-v{JUDGE_VERSION}-{n_warm}"
    try:
        if install_reward_model(out, out.name):
            return out
    except RewardModelError as exc:
        log.warning("the shipped judge does not load here (%s); training one", exc)
    exclude = {" ".join(r.title.split()).lower() for r in best_records(warm_start_source, n_warm)}
    rows = demo_judge_rows(data, exclude)
    log.info("training the demo's judge on %d ICLR abstracts (once)", len(rows))
    model = RewardModel.train(rows, RewardConfig(include_abstract_only=True))
    replace_dir_atomic(out, model.save)
    return out


def run_demo(out: Path, data: Optional[Path] = None, rounds: Optional[int] = None, samples: Optional[int] = None,
             n_prompts: Optional[int] = None, reviewer: str = "auto", fresh: bool = False):
    """Run (or resume) the demo; returns (report path, round summaries, seconds, peak RSS in MB)."""
    from .data.reward_training import ensure_default_reward_model

    start = time.monotonic()
    out = Path(out)
    data = data or find_shared_data()
    if data is None or not (data / "topics.txt").exists():
        raise InputError("the demo needs the shared data folder (topics.txt, sample.bib); pass --data DIR")
    if fresh and out.exists():
        shutil.rmtree(out)
    overrides: dict[str, Any] = {"prompts_file": str(data / "topics.txt"), "bib": str(data / "sample.bib")}
    for key, value in (("rounds", rounds), ("samples", samples), ("max_prompts", n_prompts)):
        if value is not None:
            overrides[key] = value
    iclr = data / "reviews_real" / "reviews.jsonl"
    if iclr.exists():
        preset = CycleConfig.preset("demo")
        overrides["warm_start"] = str(iclr)
        overrides["judge"] = "reward:" + str(ensure_demo_judge(data, str(iclr), preset.warm_start_examples))
    else:
        overrides.update(warm_start="", heldout=0)
        log.warning("%s is missing: no warm start and no held-out judge", iclr)
    overrides["reviewer"] = ("reward:" + str(ensure_default_reward_model(data)) if reviewer == "auto" else reviewer)
    config = CycleConfig.preset("demo", **overrides)
    resume = (out / "config.yaml").exists()
    run_cycle(out, None if resume else config, resume=resume, progress=True)
    report, summaries = write_report(out)
    return report, summaries, time.monotonic() - start, peak_rss_mb()
