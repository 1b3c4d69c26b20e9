"""One seam for every way of scoring a paper: `get_judge(spec).score(papers) -> list[Verdict]`.

    judge = get_judge("reward:models/reward")        # the scalar reward model
    judge = get_judge("local", n_reviewers=2)         # an LLM program committee (any backend spec)
    judge = get_judge("length", train_rows=rows)      # baselines fitted on a train split: constant, length
    verdicts = judge.score(papers)                    # Papers, dataset rows, paths or texts

The cycle's reward, `eval papers`, `eval reviewer` and the web UI all score through here, and every judge reads
a paper through `paper_text.judge_text`, so they see the same text. A paper whose text the injection finder
flags gets the judge's minimum score (recorded in the verdict), so a policy cannot learn to inject.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..backends.base import Backend
from ..errors import InputError
from ..injection import find_injections
from ..paper_text import PaperSource, PaperText, read_paper
from ..schema import ReviewSet, Verdict
from .baselines import Baselines

log = logging.getLogger(__name__)

__all__ = ["Judge", "ReviewerJudge", "RewardModelJudge", "BaselineJudge", "get_judge", "penalize",
           "verdict_from_review_set"]


def penalize(verdict: Verdict, min_score: float, reason: str) -> None:
    """Give a verdict the judge's minimum score, keep the one it would have had, and say why in `problems`:
    the one rule for a paper that must not pay (an injected instruction here, a missing stage in the cycle)."""
    verdict.unpenalized_score, verdict.score, verdict.penalized = verdict.score, min_score, True
    verdict.problems.append(f"{reason}: score set to the minimum {min_score:g}")


class Judge:
    """Scores papers. Subclasses implement `_score`; `score` adds the source, flags and the injection rule."""

    spec: str = ""
    backend: Optional[Backend] = None  # the model a judge runs on, when it has one (for budgets and usage)
    min_score: float = 1.0  # the bottom of the 1-10 rating scale: what a flagged paper gets
    penalize_injections: bool = True

    def score(self, papers: Sequence[PaperSource]) -> list[Verdict]:
        papers = list(papers)
        if not papers:
            return []
        texts = [read_paper(p) for p in papers]
        verdicts = self._score(papers, texts)
        if len(verdicts) != len(papers):
            raise RuntimeError(f"judge {self.spec}: {len(verdicts)} verdicts for {len(papers)} papers")
        for text, v in zip(texts, verdicts):
            v.source = v.source or self.spec
            v.paper_id = v.paper_id or text.paper_id
            if not v.flags:
                v.flags = [str(f) for f in find_injections(text.text, text.latex_source, text.hidden)]
            if v.flags and self.penalize_injections and not v.penalized:
                penalize(v, self.min_score, "injection flagged")
        return verdicts

    def _score(self, papers: list[PaperSource], texts: list[PaperText]) -> list[Verdict]:
        raise NotImplementedError


def verdict_from_review_set(rs: ReviewSet) -> Verdict:
    counts = Counter(src for review in rs.score_sources for src in review.values())
    return Verdict(paper_id=rs.paper_id, score=rs.mean_rating, decision=rs.decision, score_counts=dict(counts),
                   problems=list(rs.problems), flags=list(rs.flags), review_set=rs)


class ReviewerJudge(Judge):
    """An LLM program committee: score = mean rating of its reviews (None when no review has a rating)."""

    def __init__(self, backend: Backend, config: Any = None, n_reviewers: Optional[int] = None) -> None:
        from ..review import Reviewer

        self.backend = backend
        self.spec = backend.spec
        self.reviewer = Reviewer(backend, n_reviewers=n_reviewers, config=config)

    def _score(self, papers, texts):
        # The reviewer reads the same PaperText (so its text is judge_text's, raw-text fallback included).
        return [verdict_from_review_set(rs) for rs in self.reviewer.review_many(texts)]


class RewardModelJudge(Judge):
    """The scalar reward model: score = predicted mean rating, accept_prob from its second head."""

    def __init__(self, model_dir: Path) -> None:
        from ..reward import RewardModel

        self.spec = f"reward:{model_dir}"
        self.model = RewardModel.load(Path(model_dir))

    def _score(self, papers, texts):
        outputs = self.model.score([t.text for t in texts])
        return [Verdict(score=o["reward"], accept_prob=o.get("accept_prob"),
                        details={k: v for k, v in o.items() if k not in ("reward", "accept_prob")})
                for o in outputs]


class BaselineJudge(Judge):
    """`constant` (the train mean rating and accept rate) or `length` (log word count), fitted on train rows."""

    penalize_injections = False  # a baseline is a yardstick, not a reward

    def __init__(self, kind: str, baselines: Baselines) -> None:
        if kind not in ("constant", "length"):
            raise InputError(f"unknown baseline {kind!r}; use constant or length")
        self.spec = kind
        self.baselines = baselines

    def _score(self, papers, texts):
        outs = (self.baselines.constant(len(texts)) if self.spec == "constant"
                else self.baselines.length([t.text for t in texts]))
        return [Verdict(score=o["mean_rating"], accept_prob=o["accept_prob"]) for o in outs]


def get_judge(spec: str, train_rows: Optional[Sequence[Mapping[str, Any]]] = None, review_config: Any = None,
              n_reviewers: Optional[int] = None) -> Judge:
    """A judge for a spec: `reward:DIR`, `constant` / `length` (need train_rows), or any backend spec run as a
    Reviewer (`local`, `hf:PATH`, `openai:MODEL@URL`, `fake`, ...)."""
    spec = (spec or "").strip()
    if not spec:
        raise InputError("empty judge spec; use reward:DIR, constant, length or a backend spec such as local")
    if spec.startswith("reward:"):
        return RewardModelJudge(Path(spec.partition(":")[2]))
    if spec in ("constant", "length"):
        if not train_rows:
            raise InputError(f"the {spec!r} judge needs train rows to fit on (a Review dataset's train split)")
        return BaselineJudge(spec, Baselines.fit(list(train_rows)))
    from ..backends import get_backend

    return ReviewerJudge(get_backend(spec), config=review_config, n_reviewers=n_reviewers)
