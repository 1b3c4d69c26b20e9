"""report.md and reward.png for a run directory: the training reward per round, the held-out judge per policy,
format compliance, where the review scores came from, the best paper and the spend.

    cycleresearcher report runs/tiny
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any, Optional

from ..errors import InputError
from ..evaluate.metrics import difference_ci, mean_ci
from ..io import read_json, read_jsonl, write_text_atomic
from ..research import is_compliant
from ..schema import Paper, RoundMetrics
from .heldout import HeldOut
from .report_plot import plot_rewards
from .rundir import RunDir


@dataclass
class RoundSummary:
    metrics: RoundMetrics
    rewards: list[float]
    best: Optional[dict]  # {paper_id, title, reward, abstract, opening, source}
    reward_ci: Optional[dict] = None  # mean training reward with its 95% bootstrap interval
    compliance: Optional[float] = None  # share of the round's samples whose stages all parsed
    mean_words: Optional[float] = None
    score_sources: dict[str, int] = field(default_factory=dict)  # written / asked / chosen / missing
    flagged: int = 0  # papers the injection finder flagged (they got the minimum reward)
    noncompliant_penalized: int = 0  # papers missing a stage of their task (the minimum reward, cycle rule)


def _task(run: Path) -> str:
    config = RunDir(run).read_config() or {}
    research = config.get("research") if isinstance(config.get("research"), dict) else {}
    return research.get("task", "paper") if research.get("task") in ("paper", "idea") else "paper"


def _score_sources(row: dict[str, Any]) -> Counter:
    verdict = row.get("verdict") or {}
    review_set = verdict.get("review_set") or row.get("review_set") or {}
    return Counter(src for review in review_set.get("score_sources") or [] for src in review.values())


def summarize(run: Path) -> list[RoundSummary]:
    run = Path(run)
    run_dir = RunDir(run)
    if not run_dir.rounds():
        raise InputError(f"{run} holds no round-* folders; is it a run directory?")
    task = _task(run)
    out = []
    for r in run_dir.rounds():
        if not run_dir.done(r):
            continue  # a round in progress
        metrics = RoundMetrics.from_dict(read_json(run_dir.file(r, "metrics.json")))
        reviews = read_jsonl(run_dir.file(r, "reviews.jsonl"))
        papers = [Paper.from_dict(p) for p in read_jsonl(run_dir.file(r, "papers.jsonl"))]
        scored = [(row["reward"], row["paper_id"]) for row in reviews if row.get("reward") is not None]
        best = None
        if scored:
            reward, paper_id = max(scored)
            paper = next((p for p in papers if p.paper_id == paper_id), Paper())
            best = {"paper_id": paper_id, "reward": reward, "title": paper.title or "(untitled)",
                    "abstract": paper.abstract, "opening": " ".join(paper.raw_text.split())[:600],
                    "source": next((row.get("reward_source", "") for row in reviews), "")}
        sources = sum((_score_sources(row) for row in reviews), Counter())
        verdicts = [row.get("verdict") or {} for row in reviews]
        flagged = sum(bool(v.get("penalized") and v.get("flags")) for v in verdicts)
        noncompliant = sum(bool(v.get("penalized") and not v.get("flags")) for v in verdicts)
        out.append(RoundSummary(
            metrics, [s for s, _ in scored], best, reward_ci=mean_ci([s for s, _ in scored], seed=r),
            compliance=mean(is_compliant(p, task) for p in papers) if papers else None,
            mean_words=mean(len(p.raw_text.split()) for p in papers) if papers else None,
            score_sources=dict(sources), flagged=flagged, noncompliant_penalized=noncompliant))
    if not out:
        raise InputError(f"{run}: no round has finished yet")
    return out


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(est: Optional[dict]) -> str:
    if not est or est.get("value") is None:
        return "-"
    return f"{est['value']:.2f} [{est['ci_low']:.2f}, {est['ci_high']:.2f}]"


def judge_line(run: Path, first: Optional[str] = None) -> Optional[str]:
    """One line: did the held-out judge rise from the first (or `first`) to the last policy, by more than its
    interval?"""
    found = _judge_change(run, first)
    if found is None:
        return None
    first, last, diff = found
    return (f"**Held-out judge: {first} -> {last}: {diff['value']:+.2f} [{diff['ci_low']:+.2f}, "
            f"{diff['ci_high']:+.2f}] (95% bootstrap CI of the difference): {_verdict(diff)}.**")


def _judge_change(run: Path, first: Optional[str] = None) -> Optional[tuple[str, str, dict]]:
    heldout = HeldOut(RunDir(run))
    labels = heldout.labels()
    if len(labels) < 2 or (first is not None and first not in labels[:-1]):
        return None
    first, last = first or labels[0], labels[-1]
    diff = difference_ci(heldout.scores(first), heldout.scores(last), seed=0)
    return None if diff is None else (first, last, diff)


def _verdict(diff: dict) -> str:
    return ("a rise larger than its interval" if diff["ci_low"] > 0 else
            "a fall larger than its interval" if diff["ci_high"] < 0 else "within noise (the interval spans 0)")


def _heldout_lines(run: Path, summaries: list[RoundSummary]) -> list[str]:
    held = HeldOut(RunDir(run)).summaries()
    if not held:
        return []
    judge = held[-1]["judge"]
    lines = ["", "## Held-out prompts, independent judge", "",
             f"Judge: `{judge}`" + (" (**the training reward itself: not independent**)"
                                   if held[-1].get("judge_is_training_reward") else "") +
             ". Each row is one policy writing papers for prompts it never trained on: `initial` (before the "
             "warm start), `rNN` (the policy round NN samples from; the last one is after the last round).", "",
             "| policy | papers | judge mean [95% CI] | compliance | mean words | flagged |", "|---|---|---|---|---|---|"]
    for h in held:
        lines.append(f"| {h['label']} | {h['n_papers']} | {_ci(h['judge_mean'])} | {_fmt(h['compliance'])} | "
                     f"{_fmt(h['mean_words'], 0)} | {h.get('flagged', 0)} |")
    line = judge_line(run)
    if line:
        lines += ["", line]
    rounds_only = judge_line(run, first="r00") if line and held[0]["label"] == "initial" else None
    if rounds_only:  # with a warm start, r00 is its policy: this line is the preference rounds' share alone
        lines += ["", "Preference rounds alone (from the warm-started policy): " + rounds_only.strip("*")]
    # The training reward's rounds sample from r00 on, so the judge is compared over the same policies.
    train = [s.reward_ci["value"] for s in summaries if s.reward_ci]
    change = _judge_change(run, "r00" if rounds_only else None)
    if len(train) >= 2 and train[-1] > train[0] and change and change[2]["value"] < 0:
        first, last, diff = change
        lines += ["", f"> **Warning: the training reward rose ({train[0]:.2f} -> {train[-1]:.2f}) while the held-out "
                      f"judge fell ({first} -> {last}: {diff['value']:+.2f} [{diff['ci_low']:+.2f}, "
                      f"{diff['ci_high']:+.2f}], {_verdict(diff)}): the policy may be learning to please its reward "
                      "rather than to write better papers (reward hacking).**"]
    return lines


def write_report(run: Path) -> tuple[Path, list[RoundSummary]]:
    """Write report.md and reward.png into the run directory; returns the report path and the summaries."""
    run = Path(run)
    summaries = summarize(run)
    plot_rewards(summaries, HeldOut(RunDir(run)).summaries(), run / "reward.png")
    lines = [f"# Run report: {run.name}", "",
             "All papers in this run are machine-generated and their experimental results are simulated "
             "unless a round says otherwise.", "", "![reward per round](reward.png)", "",
             "## Training reward (train prompts)", "",
             "| round | papers | rewarded | mean reward [95% CI] | std | min | max | compliance | mean words | pairs | "
             "mean margin | first loss | last loss | seconds |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        m = s.metrics
        lines.append(f"| {m.round} | {m.n_papers} | {m.n_reviewed} | {_ci(s.reward_ci)} | {_fmt(m.std_reward)} | "
                     f"{_fmt(m.min_reward)} | {_fmt(m.max_reward)} | {_fmt(s.compliance)} | {_fmt(s.mean_words, 0)} | "
                     f"{m.n_pairs} | {_fmt(m.mean_margin)} | {_fmt(m.losses[0] if m.losses else None, 4)} | "
                     f"{_fmt(m.losses[-1] if m.losses else None, 4)} | {sum(m.seconds.values()):.0f} |")
    lines += _heldout_lines(run, summaries)
    sources = sum((Counter(s.score_sources) for s in summaries), Counter())
    if sources:
        lines += ["", "## Where the review scores came from", "",
                  "| round | written | asked separately | chosen by likelihood | missing |", "|---|---|---|---|---|"]
        for s in summaries:
            c = s.score_sources
            lines.append(f"| {s.metrics.round} | {c.get('written', 0)} | {c.get('asked', 0)} | {c.get('chosen', 0)} | "
                         f"{c.get('missing', 0)} |")
    best = max((s.best for s in summaries if s.best), key=lambda b: b["reward"], default=None)
    if best:
        lines += ["", "## Best paper", "", f"**{best['title']}** ({best['paper_id']}, reward {best['reward']:.2f})",
                  "", best["abstract"] or "(no abstract)", "", "What the model wrote (opening):", "",
                  "> " + (best["opening"] or "(empty)")]
    stages = sorted({k for s in summaries for k in s.metrics.seconds})
    lines += ["", "## Spend", "", "| stage | tokens | seconds |", "|---|---|---|"]
    for stage in stages:
        lines.append(f"| {stage} | {sum(s.metrics.tokens.get(stage, 0) for s in summaries)} | "
                     f"{sum(s.metrics.seconds.get(stage, 0.0) for s in summaries):.0f} |")
    failures = sum(s.metrics.parse_failures for s in summaries)
    flagged = sum(s.flagged for s in summaries)
    noncompliant = sum(s.noncompliant_penalized for s in summaries)
    lines += ["", f"Papers without a reward (unparsable reviews): {failures}. Papers flagged for injected "
                  f"instructions (given the minimum reward): {flagged}. Papers missing a stage their task asks "
                  f"for (given the minimum reward): {noncompliant}."]
    rewards = [r for s in summaries for r in s.rewards]
    if rewards:
        lines.append(f"Mean reward over all rounds: {mean(rewards):.2f}.")
    path = run / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path, summaries
