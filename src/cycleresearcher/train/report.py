"""report.md and reward.png for a run directory: rewards per round with their spread, the best paper, the spend.

    cycleresearcher report runs/tiny
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Optional

from ..errors import InputError
from ..io import read_jsonl, save_figure, write_text_atomic
from ..schema import RoundMetrics


@dataclass
class RoundSummary:
    metrics: RoundMetrics
    rewards: list[float]
    best: Optional[dict]  # {paper_id, title, reward}


def summarize(run: Path) -> list[RoundSummary]:
    run = Path(run)
    rounds = sorted(p for p in run.glob("round-*") if p.is_dir())
    if not rounds:
        raise FileNotFoundError(f"{run} holds no round-* folders; is it a run directory?")
    out = []
    for rdir in rounds:
        metrics_path = rdir / "metrics.json"
        if not metrics_path.exists():
            continue  # a round in progress
        metrics = RoundMetrics.from_dict(json.loads(metrics_path.read_text(encoding="utf-8")))
        reviews = read_jsonl(rdir / "reviews.jsonl")
        scored = [(row["reward"], row["paper_id"]) for row in reviews if row.get("reward") is not None]
        best = None
        if scored:
            reward, paper_id = max(scored)
            paper = next((p for p in read_jsonl(rdir / "papers.jsonl") if p.get("paper_id") == paper_id), {})
            best = {"paper_id": paper_id, "reward": reward, "title": paper.get("title") or "(untitled)",
                    "abstract": paper.get("abstract", ""), "opening": " ".join((paper.get("raw_text") or "").split())[:600],
                    "source": next((row.get("reward_source", "") for row in reviews), "")}
        out.append(RoundSummary(metrics, [s for s, _ in scored], best))
    if not out:
        raise InputError(f"{run}: no round has finished yet")
    return out


def plot_rewards(summaries: list[RoundSummary], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    xs = [s.metrics.round for s in summaries]
    for s in summaries:
        if s.rewards:
            ax.scatter([s.metrics.round] * len(s.rewards), s.rewards, color="0.6", s=14, zorder=2,
                       label="sampled paper" if s is summaries[0] else None)
    means = [s.metrics.mean_reward for s in summaries]
    stds = [s.metrics.std_reward or 0.0 for s in summaries]
    if all(m is not None for m in means):
        ax.errorbar(xs, means, yerr=stds, color="C0", marker="o", capsize=4, zorder=3, label="mean ± std")
        ax.plot(xs, [s.metrics.max_reward for s in summaries], color="C2", linestyle="--", marker="^",
                label="max")
    ax.set_xlabel("round")
    source = next((s.best["source"] for s in summaries if s.best), "")
    ax.set_ylabel("predicted mean rating (scalar reward model)" if source.startswith("reward:")
                  else "reward (mean reviewer rating)")
    ax.set_xticks(xs)
    ax.set_title("Reward of sampled papers per round")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_report(run: Path) -> tuple[Path, list[RoundSummary]]:
    """Write report.md and reward.png into the run directory; returns the report path and the summaries."""
    run = Path(run)
    summaries = summarize(run)
    plot_rewards(summaries, run / "reward.png")
    lines = [f"# Run report: {run.name}", "",
             "All papers in this run are machine-generated and their experimental results are simulated "
             "unless a round says otherwise.", "", "![reward per round](reward.png)", "",
             "| round | papers | rewarded | mean reward | std | min | max | pairs | mean margin | first loss | "
             "last loss | seconds |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        m = s.metrics
        lines.append(f"| {m.round} | {m.n_papers} | {m.n_reviewed} | {_fmt(m.mean_reward)} | {_fmt(m.std_reward)} | "
                     f"{_fmt(m.min_reward)} | {_fmt(m.max_reward)} | {m.n_pairs} | {_fmt(m.mean_margin)} | "
                     f"{_fmt(m.losses[0] if m.losses else None, 4)} | {_fmt(m.losses[-1] if m.losses else None, 4)}"
                     f" | {sum(m.seconds.values()):.0f} |")
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
    lines += ["", f"Papers without a reward (unparsable reviews): {failures}."]
    rewards = [r for s in summaries for r in s.rewards]
    if rewards:
        lines.append(f"Mean reward over all rounds: {mean(rewards):.2f}.")
    path = run / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path, summaries
