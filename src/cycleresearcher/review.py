"""The Reviewer: a program committee of N reviewers for any paper, in the CycleReviewer format.

    cycleresearcher review paper.pdf --reviewers 4 --backend local

    reviewer = Reviewer(get_backend("local"), n_reviewers=4)
    review_set = reviewer.review(Path("paper.tex"))
    review_set.mean_rating  # the reward

The paper is quoted data inside the user turn. Instruction-like text in it (visible, white, microscopic, or
in LaTeX comments) is flagged in `ReviewSet.flags`. Papers longer than the backend's context are cut, with a
note in `ReviewSet.problems`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from .backends.base import Backend
from .formats.prompts import review_system_prompt, review_user_prompt
from .formats.review import parse_review_set
from .injection import find_injections
from .repair import generate_with_repairs
from .schema import Paper, Provenance, ReviewSet

log = logging.getLogger(__name__)

PaperSource = Union[Path, str, Paper]


@dataclass
class ReviewConfig:
    """How the reviewer samples."""

    n_reviewers: int = field(default=4, metadata={"help": "reviews per paper (the released code asks for 4)"})
    temperature: float = field(default=0.4, metadata={"help": "sampling temperature; 0 is greedy"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass"})
    max_new_tokens: int = field(default=2048, metadata={"help": "tokens for all reviews + meta-review"})
    max_repairs: int = field(default=1, metadata={"help": "re-asks when reviews, ratings or the decision are missing"})
    seed: Optional[int] = field(default=0, metadata={"help": "sampling seed; None for random"})


@dataclass
class PaperText:
    """A paper as the reviewer reads it, plus the raw LaTeX the injection check needs."""

    text: str
    latex_source: str = ""
    title: str = ""
    paper_id: str = ""
    problems: list[str] = field(default_factory=list)


def paper_text(source: PaperSource) -> PaperText:
    """Read a paper from a Paper, a path (.tex, LaTeX folder, archive, .pdf, .md, .txt, paper.json) or raw text."""
    if isinstance(source, Paper):
        return _from_paper(source)
    if isinstance(source, Path):
        return _from_path(source)
    if isinstance(source, str):
        return PaperText(text=source, latex_source=source if "\\section" in source or "\\begin" in source else "")
    raise TypeError(f"cannot review a {type(source).__name__}; give a Path, a Paper or text")


def _from_paper(paper: Paper) -> PaperText:
    parts = [f"# {paper.title}" if paper.title else "", f"## Abstract\n\n{paper.abstract}" if paper.abstract else "",
             paper.latex]
    if paper.experimental_results:
        parts.append("## Experimental results\n\n" + json.dumps(paper.experimental_results, ensure_ascii=False))
    parts.append(paper.conclusion_latex)
    return PaperText(text="\n\n".join(p for p in parts if p.strip()), latex_source=paper.full_latex,
                     title=paper.title, paper_id=paper.paper_id)


def _from_path(path: Path) -> PaperText:
    if path.is_dir() and (path / "paper.json").exists():  # a folder written by `research`
        return _from_paper(Paper.from_dict(json.loads((path / "paper.json").read_text(encoding="utf-8"))))
    from .formats.document import load_document

    doc = load_document(path)
    latex_source = ""
    if path.suffix == ".tex":
        latex_source = path.read_text(encoding="utf-8", errors="replace")
    elif path.is_dir():
        latex_source = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(path.rglob("*.tex")))
    elif doc.kind == "latex":
        latex_source = doc.latex
    text = doc.text
    if doc.title and doc.title not in text[:500]:
        text = f"# {doc.title}\n\n" + (f"## Abstract\n\n{doc.abstract}\n\n" if doc.abstract else "") + text
    return PaperText(text=text, latex_source=latex_source, title=doc.title, paper_id=path.stem,
                     problems=list(doc.problems))


def review_missing(review_set: ReviewSet, n_reviewers: int) -> list[str]:
    missing = []
    rated = len(review_set.ratings)
    if rated < n_reviewers:
        missing.append(f"{n_reviewers - rated} of the {n_reviewers} reviews (each with its ## Rating)")
    if not review_set.meta_review:
        missing.append("the ## Meta Review")
    if review_set.decision is None:
        missing.append("the ## Paper Decision (Accept or Reject)")
    return missing


class Reviewer:
    """Reviews papers with a reward backend."""

    def __init__(self, backend: Backend, n_reviewers: Optional[int] = None,
                 config: Optional[ReviewConfig] = None) -> None:
        self.backend = backend
        self.config = config or ReviewConfig()
        if n_reviewers is not None:
            self.config.n_reviewers = n_reviewers
        if self.config.n_reviewers < 1:
            raise ValueError(f"n_reviewers must be >= 1, got {self.config.n_reviewers}")

    def messages(self, paper: PaperText) -> tuple[list[dict], list[str]]:
        """The conversation for one paper, cut to the context, and the notes about the cut."""
        system = review_system_prompt(self.config.n_reviewers)
        budget = self.backend.context_length - self.config.max_new_tokens - self.backend.count_tokens(system) - 96
        text, notes = paper.text, []
        if budget < 256:
            raise ValueError(f"the backend context ({self.backend.context_length} tokens) leaves no room for a paper "
                             f"after {self.config.max_new_tokens} new tokens; lower max_new_tokens")
        total = self.backend.count_tokens(text)
        if total > budget:
            # Characters per token varies; shrink until the count fits.
            cut = text
            while self.backend.count_tokens(cut) > budget and len(cut) > 100:
                cut = cut[: int(len(cut) * budget / max(1, self.backend.count_tokens(cut)) * 0.97)]
            notes.append(f"paper cut from {total} to {self.backend.count_tokens(cut)} tokens to fit the backend "
                         f"context ({self.backend.context_length} tokens)")
            text = cut + "\n\n[... the rest of the paper was cut to fit the reviewer's context ...]"
        return [{"role": "system", "content": system}, {"role": "user", "content": review_user_prompt(text)}], notes

    def review(self, source: PaperSource, progress: bool = False) -> ReviewSet:
        return self.review_many([source], progress=progress)[0]

    def review_many(self, sources: list[PaperSource], progress: bool = False) -> list[ReviewSet]:
        """One ReviewSet per paper; all papers go to the backend in one batch (repairs in a second one)."""
        papers = [paper_text(s) for s in sources]
        prepared = [self.messages(p) for p in papers]
        c = self.config
        attempts = generate_with_repairs(
            self.backend, [m for m, _ in prepared], parse_review_set,
            lambda rs: review_missing(rs, c.n_reviewers),
            lambda gaps: "Your answer is missing " + "; ".join(gaps) + ". Write all the reviews again in the "
                         "required format.",
            c.max_repairs, progress, temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens,
            seed=c.seed, stage="review")
        out = []
        for paper, (_, notes), attempt in zip(papers, prepared, attempts):
            rs = attempt.result
            rs.paper_id = paper.paper_id
            rs.messages = attempt.messages
            rs.problems = paper.problems + notes + rs.problems
            rs.flags = [str(f) for f in find_injections(paper.text, paper.latex_source)]
            rs.provenance = Provenance(model=self.backend.spec, seed=c.seed, prompt_tokens=attempt.prompt_tokens,
                                       completion_tokens=attempt.completion_tokens,
                                       seconds=round(attempt.seconds, 3), stage="review",
                                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
            if len(attempt.completions) > 1:
                rs.problems.append(f"needed {len(attempt.completions) - 1} repair request(s)")
            out.append(rs)
        return out
