"""Held-out prompts and an independent judge: does the policy get better on prompts it never trains on?

A run with `heldout: N` keeps N of its prompts out of training. The policy each round samples from (and the
policy after the last round) writes papers for them, and a judge that is not the training reward scores those
papers, so a policy that learns to please its own reward without writing better papers shows up as a training
reward that rises while the judge stays flat or falls (reward hacking).

    runs/<name>/heldout/<label>/papers.jsonl    the held-out papers of one policy (appended per batch)
    runs/<name>/heldout/<label>/verdicts.jsonl  the judge's Verdict per paper
    runs/<name>/heldout/<label>/summary.json    judge mean with a 95% bootstrap CI, compliance, length (last)

Labels: `initial` (before the warm start, when the run has one), `r00` (the policy round 0 samples from),
..., `rNN` with NN = rounds (the policy after the last round).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import ConfigError
from ..evaluate.metrics import mean_ci
from ..io import append_jsonl, read_json, read_jsonl, write_json_atomic
from ..judges import Judge
from ..research import Researcher, is_compliant
from ..schema import Paper, Verdict
from .rundir import RunDir, label_order

log = logging.getLogger(__name__)



def split_prompts(ids: Sequence[str], n_heldout: int, seed: int) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids): a seeded draw of n_heldout prompts, each list in the file's order."""
    ids = list(ids)
    if n_heldout <= 0:
        return ids, []
    if n_heldout >= len(ids):
        raise ConfigError(f"heldout={n_heldout} leaves no prompt to train on ({len(ids)} prompts)")
    held = set(random.Random(seed * 7919 + 17).sample(ids, n_heldout))
    return [i for i in ids if i not in held], [i for i in ids if i in held]


@dataclass
class HeldOut:
    """The held-out evaluations of one run directory."""

    run_dir: RunDir
    task: str = "paper"  # what compliance means (research.TASK_REQUIRED)

    def folder(self, label: str) -> Path:
        return self.run_dir.heldout_dir(label)

    def done(self, label: str) -> bool:
        return (self.folder(label) / "summary.json").exists()

    def labels(self) -> list[str]:
        return [label for label in self.run_dir.heldout_labels() if self.done(label)]

    def papers(self, label: str) -> list[Paper]:
        return [Paper.from_dict(row) for row in read_jsonl(self.folder(label) / "papers.jsonl")]

    def sample(self, label: str, researcher: Researcher, prompts: list[dict], k: int, seed: int,
               batch: int = 4) -> list[Paper]:
        """k papers per held-out prompt from the researcher's policy; resumes a partly written label."""
        path = self.folder(label) / "papers.jsonl"
        papers = self.papers(label)
        have = {p.prompt_id for p in papers}
        todo = [p for p in prompts if p["id"] not in have]
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            rows = researcher.sample([p["messages"] for p in chunk], k, seed=seed + start)
            new = []
            for prompt, row in zip(chunk, rows):
                for paper in row:
                    paper.prompt_id, paper.topic = prompt["id"], prompt["topic"]
                    paper.paper_id = f"{label}-{prompt['id']}-s{paper.sample_index}"
                    new.append(paper)
            append_jsonl(path, [p.to_dict() for p in new])
            papers.extend(new)
        return papers

    def score(self, label: str, judge: Judge, policy: str, training_reward: str) -> dict[str, Any]:
        """Judge the label's papers (resuming the verdicts already written) and write its summary.json."""
        folder = self.folder(label)
        papers = self.papers(label)
        done = {row["paper_id"]: Verdict.from_dict(row) for row in read_jsonl(folder / "verdicts.jsonl")}
        todo = [p for p in papers if p.paper_id not in done]
        for start in range(0, len(todo), 8):
            chunk = todo[start:start + 8]
            verdicts = judge.score(chunk)
            for paper, verdict in zip(chunk, verdicts):
                verdict.paper_id = paper.paper_id
                verdict.review_set = None  # the full reviews stay out of the summary files; scores are kept
            append_jsonl(folder / "verdicts.jsonl", [v.to_dict() for v in verdicts])
            done.update({v.paper_id: v for v in verdicts})
        scores = [done[p.paper_id].score for p in papers if p.paper_id in done]
        summary = {
            "label": label, "policy": policy, "judge": judge.spec, "training_reward": training_reward,
            "judge_is_training_reward": judge.spec.strip() == training_reward.strip(),
            "n_papers": len(papers), "n_scored": sum(s is not None for s in scores),
            "judge_mean": mean_ci(scores, seed=label_order(label)[1]),  # as `eval papers` computes it
            "compliance": float(np.mean([is_compliant(p, self.task) for p in papers])) if papers else None,
            "mean_words": float(np.mean([len(p.raw_text.split()) for p in papers])) if papers else None,
            "flagged": sum(bool(done[p.paper_id].flags) for p in papers if p.paper_id in done),
        }
        write_json_atomic(folder / "summary.json", summary)
        log.info("held-out %s: judge mean %s (%d papers), compliance %.2f", label,
                 (summary["judge_mean"] or {}).get("value"), len(papers), summary["compliance"] or 0.0)
        return summary

    def summaries(self) -> list[dict[str, Any]]:
        return [read_json(self.folder(label) / "summary.json") for label in self.labels()]

    def scores(self, label: str) -> list[float]:
        rows = read_jsonl(self.folder(label) / "verdicts.jsonl")
        return [row["score"] for row in rows if row.get("score") is not None]
