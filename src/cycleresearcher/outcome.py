"""Did a step produce what it was asked for? The checks behind the CLI's non-zero exits on empty results.

A review with no rated review, a revision that lost stages its input had, and a cycle round that made no
preference pairs all look like success unless someone checks: the reward is missing, the paper got worse,
the policy was not trained. Each check returns a one-line reason (or nothing), so the CLI can fail loudly
and the library can decide for itself.

    reason = empty_review(review_set)          # None when at least one review has a rating
    lost = lost_stages(paper, revised)         # ["Motivation", "Main Idea"] when the revision dropped them
    idle = rounds_without_pairs(metrics)       # [0, 2]: rounds whose policy was not trained
"""

from __future__ import annotations

from typing import Optional

from .schema import Paper, ReviewSet, RoundMetrics

# Paper stages a revision must keep when its input had them: (name shown to the user, test on a Paper).
STAGES = (
    ("Motivation", lambda p: bool(p.motivation.strip())),
    ("Main Idea", lambda p: bool(p.main_idea.strip())),
    ("title", lambda p: bool(p.title.strip())),
    ("abstract", lambda p: bool(p.abstract.strip())),
    ("LaTeX paper", lambda p: bool(p.latex.strip())),
    ("Experimental Setup", lambda p: bool(p.experimental_setup)),
    ("Experiments and Conclusion LaTeX", lambda p: bool(p.conclusion_latex.strip())),
)


def empty_review(review_set: ReviewSet) -> Optional[str]:
    """Why this ReviewSet gives no reward (no review at all, or none with a rating); None when it has one."""
    if not review_set.reviews:
        return "the model's output held no review"
    if not review_set.ratings:
        return f"none of the {len(review_set.reviews)} review(s) has a rating"
    return None


def lost_stages(before: Paper, after: Paper) -> list[str]:
    """Stages `before` had and `after` lacks, in the paper's order."""
    return [name for name, present in STAGES if present(before) and not present(after)]


def rounds_without_pairs(metrics: list[RoundMetrics]) -> list[int]:
    """Rounds that made no preference pair (so SimPO had nothing to train on)."""
    return [m.round for m in metrics if m.n_pairs == 0]
