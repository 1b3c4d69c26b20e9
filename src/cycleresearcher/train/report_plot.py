"""reward.png: the training reward per round (left) and the held-out judge per policy (right)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import save_figure


def _errorbar(ax, xs, ests, **kwargs) -> None:
    pts = [(x, e) for x, e in zip(xs, ests) if e and e.get("value") is not None]
    if not pts:
        return
    x = [p[0] for p in pts]
    y = [p[1]["value"] for p in pts]
    lo = [p[1]["value"] - p[1]["ci_low"] for p in pts]
    hi = [p[1]["ci_high"] - p[1]["value"] for p in pts]
    ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=4, zorder=3, **kwargs)


def plot_rewards(summaries: list, heldout: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if heldout else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), dpi=120, squeeze=False)
    ax = axes[0][0]
    xs = [s.metrics.round for s in summaries]
    for s in summaries:
        if s.rewards:
            ax.scatter([s.metrics.round] * len(s.rewards), s.rewards, color="0.6", s=14, zorder=2,
                       label="sampled paper" if s is summaries[0] else None)
    _errorbar(ax, xs, [s.reward_ci for s in summaries], color="C0", label="mean (95% CI)")
    if all(s.metrics.max_reward is not None for s in summaries):
        ax.plot(xs, [s.metrics.max_reward for s in summaries], color="C2", linestyle="--", marker="^", label="max")
    source = next((s.best["source"] for s in summaries if s.best), "")
    ax.set_ylabel("predicted mean rating (reward model)" if source.startswith("reward:")
                  else "reward (mean reviewer rating)")
    ax.set_xlabel("round")
    ax.set_xticks(xs)
    ax.set_title("Training reward, train prompts")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if heldout:
        ax2 = axes[0][1]
        pos = list(range(len(heldout)))
        _errorbar(ax2, pos, [h.get("judge_mean") for h in heldout], color="C3", label="judge mean (95% CI)")
        ax2.set_xticks(pos)
        ax2.set_xticklabels([h["label"] for h in heldout])
        ax2.set_xlabel("policy")
        ax2.set_ylabel(f"judge: {heldout[-1]['judge'][:40]}")
        ax2.set_title("Independent judge, held-out prompts")
        ax2.grid(alpha=0.3)
        twin = ax2.twinx()
        twin.plot(pos, [h.get("compliance") or 0.0 for h in heldout], color="C4", linestyle=":", marker="s",
                  label="format compliance")
        twin.set_ylim(-0.05, 1.05)
        twin.set_ylabel("share of papers whose stages parse")
        lines = ax2.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax2.legend(lines[0] + more[0], lines[1] + more[1], loc="best", fontsize=8)
    fig.tight_layout()
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)
