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

import dataclasses
import datetime as _dt
import logging
from dataclasses import dataclass, field
from typing import Optional

from .backends.base import Backend
from .config import ConfigError, StrictConfig
from .formats.markdown import parse_score
from .formats.prompts import (SCORE_QUESTIONS, meta_review_prompt, review_system_prompt, review_user_prompt,
                              score_question_prompt, single_review_system_prompt)
from .formats.review import SCORE_RANGES, SCORE_WORDS_1_4, SEPARATOR, parse_review_set, render_review
from .injection import find_injections
from .repair import generate_with_repairs
from .paper_text import PaperSource, PaperText, read_paper
from .schema import Completion, GenerationRequest, Provenance, Review, ReviewSet

log = logging.getLogger(__name__)



@dataclass
class ReviewConfig(StrictConfig):
    """How the reviewer samples."""

    n_reviewers: int = field(default=4, metadata={"help": "reviews per paper (the released code asks for 4)"})
    temperature: float = field(default=0.4, metadata={"help": "sampling temperature; 0 is greedy"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass"})
    max_new_tokens: int = field(default=2048, metadata={"help": "tokens for all reviews + meta-review"})
    max_repairs: int = field(default=1, metadata={"help": "re-asks when reviews, ratings or the decision are missing"})
    seed: Optional[int] = field(default=0, metadata={"help": "sampling seed; None for random"})
    max_paper_tokens: int = field(default=0, metadata={
        "help": "cut papers to this many tokens (0: whatever the backend's context leaves; per-review mode on the "
                "embedded model uses 3000, since it reads the paper once per reviewer on a CPU)"})
    mode: str = field(default="auto", metadata={
        "help": "set: the whole committee in one completion (the CycleReviewer format); per-review: one "
                "completion per reviewer, missing scores asked for one by one, then the meta-review (small models); "
                "auto: per-review for the embedded model, set otherwise"})

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "set", "per-review"):
            raise ConfigError(f"review mode must be auto, set or per-review, got {self.mode!r}")
        if self.n_reviewers < 1:
            raise ConfigError(f"n_reviewers must be >= 1, got {self.n_reviewers}")


EMPTY_PAPER = "the paper has no text; it was not reviewed"
DECISION_CHOSEN = "paper decision chosen by the model's likelihood of Accept/Reject"
# How each score of a review was obtained (ReviewSet.score_sources), as the CLI and reports say it.
SOURCE_WORDS = {"written": "written", "chosen": "chosen by likelihood", "asked": "asked separately",
                "missing": "missing"}


def score_source_counts(review_set: ReviewSet, name: str = "rating") -> dict[str, int]:
    """How many reviews' `name` score was written, chosen by likelihood, asked separately or is missing
    (only the sources that occur, in that order)."""
    found = [sources.get(name, "missing") for sources in review_set.score_sources]
    return {source: found.count(source) for source in SOURCE_WORDS if found.count(source)}


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
        if n_reviewers is not None:  # a copy: the caller's config stays as it was
            self.config = dataclasses.replace(self.config, n_reviewers=n_reviewers)

    @property
    def mode(self) -> str:
        if self.config.mode != "auto":
            return self.config.mode
        # The backend declares it: the embedded 135M model cannot keep four reviews in the form within one
        # completion, so it reviews one reviewer at a time.
        return self.backend.default_review_mode

    def messages(self, paper: PaperText, system: Optional[str] = None,
                 max_new_tokens: Optional[int] = None) -> tuple[list[dict], list[str]]:
        """The conversation for one paper, cut to the context, and the notes about the cut."""
        system = system or review_system_prompt(self.config.n_reviewers)
        max_new_tokens = max_new_tokens or self.config.max_new_tokens
        budget = self.backend.context_length - max_new_tokens - self.backend.count_tokens(system) - 96
        text, notes = paper.text, []
        if budget < 256:
            raise ValueError(f"the backend context ({self.backend.context_length} tokens) leaves no room for a paper "
                             f"after {max_new_tokens} new tokens; lower max_new_tokens")
        cap = self.config.max_paper_tokens or (3000 if self.mode == "per-review" and self.config.mode == "auto" else 0)
        if cap:
            budget = min(budget, cap)
        total = self.backend.count_tokens(text)
        if total > budget:
            # Characters per token varies; shrink until the count fits.
            cut = text
            while self.backend.count_tokens(cut) > budget and len(cut) > 100:
                cut = cut[: int(len(cut) * budget / max(1, self.backend.count_tokens(cut)) * 0.97)]
            notes.append(f"paper cut from {total} to {self.backend.count_tokens(cut)} tokens to fit the reviewer's "
                         f"budget ({budget} tokens; backend context {self.backend.context_length})")
            text = cut + "\n\n[... the rest of the paper was cut to fit the reviewer's context ...]"
        return [{"role": "system", "content": system}, {"role": "user", "content": review_user_prompt(text)}], notes

    def review(self, source: PaperSource, progress: bool = False) -> ReviewSet:
        return self.review_many([source], progress=progress)[0]

    def review_many(self, sources: list[PaperSource], progress: bool = False) -> list[ReviewSet]:
        """One ReviewSet per paper; all papers go to the backend in one batch (repairs in a second one).

        A paper with no text is not sent to the model: its ReviewSet has no review and says why (a model asked
        to review nothing still writes a rating)."""
        papers = [s if isinstance(s, PaperText) else read_paper(s) for s in sources]
        todo = [k for k, p in enumerate(papers) if p.text.strip()]
        done = self._review_papers([papers[k] for k in todo], progress) if todo else []
        out = [self._finish(p, [], ReviewSet(problems=[EMPTY_PAPER])) for p in papers]
        for k, rs in zip(todo, done):
            out[k] = rs
        return out

    def _review_papers(self, papers: list[PaperText], progress: bool) -> list[ReviewSet]:
        if self.mode == "per-review":
            return [self._finish(paper, notes, rs) for paper, (rs, notes) in
                    zip(papers, self._per_review(papers, progress))]
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
            rs.messages = attempt.messages
            _account(rs, attempt.completions)
            if len(attempt.completions) > 1:
                rs.problems.append(f"needed {len(attempt.completions) - 1} repair request(s)")
            out.append(self._finish(paper, notes, rs))
        return self._fall_back(papers, out, attempts, progress)

    def _fall_back(self, papers: list[PaperText], sets: list[ReviewSet], attempts, progress: bool) -> list[ReviewSet]:
        """Papers whose set completion held no rated review are reviewed again one reviewer at a time: a model
        that cannot write the whole committee in one completion would otherwise give an empty verdict."""
        empty = [k for k, rs in enumerate(sets) if not rs.ratings]
        if not empty:
            return sets
        log.warning("%d of %d set completion(s) held no rated review; reviewing those papers one reviewer at a "
                    "time", len(empty), len(sets))
        for k, (rs, notes) in zip(empty, self._per_review([papers[k] for k in empty], progress)):
            spent = attempts[k].completions
            rs.problems.insert(0, f"the whole-committee completion held no rated review ({len(spent)} completion(s)); "
                                  "fell back to per-review mode (one completion per reviewer)")
            rs.provenance.prompt_tokens += sum(c.prompt_tokens for c in spent)
            rs.provenance.completion_tokens += sum(c.completion_tokens for c in spent)
            rs.provenance.seconds = round(rs.provenance.seconds + sum(c.seconds for c in spent), 3)
            sets[k] = self._finish(papers[k], notes, rs)
        return sets

    def _finish(self, paper: PaperText, notes: list[str], rs: ReviewSet) -> ReviewSet:
        if not rs.score_sources:  # set mode: a score is written or missing
            rs.score_sources = [{name: "written" if getattr(r, name) is not None else "missing"
                                 for name in SCORE_QUESTIONS} for r in rs.reviews]
        rs.paper_id = paper.paper_id
        rs.problems = paper.problems + notes + rs.problems
        rs.flags = [str(f) for f in find_injections(paper.text, paper.latex_source, paper.hidden)]
        rs.provenance.model = self.backend.spec
        rs.provenance.seed = self.config.seed
        rs.provenance.stage = "review"
        rs.provenance.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return rs

    def _per_review(self, papers: list[PaperText], progress: bool) -> list[tuple[ReviewSet, list[str]]]:
        """One completion per reviewer; each missing score asked for with the review as context; then the
        meta-review from the reviews. Three batched backend calls for all papers."""
        c = self.config
        n = c.n_reviewers
        per_review_tokens = max(256, c.max_new_tokens // n)
        prepared = [self.messages(p, single_review_system_prompt(), per_review_tokens) for p in papers]
        options = {"temperature": c.temperature, "top_p": c.top_p, "seed": c.seed, "stage": "review"}
        results = self.backend.generate([GenerationRequest(messages=m, n=n, max_new_tokens=per_review_tokens,
                                                           **options) for m, _ in prepared], progress=progress)
        sets, spent = [], []
        for (messages, _), completions in zip(prepared, results):
            rs = ReviewSet(messages=messages)
            for j, completion in enumerate(completions):
                parsed = parse_review_set(completion.text)
                review = parsed.reviews[0] if parsed.reviews else Review(summary=completion.text.strip())
                rs.reviews.append(review)
                rs.problems.extend(_per_review_problems(parsed.problems, j))
                rs.score_sources.append({name: "written" if getattr(review, name) is not None else "missing"
                                         for name in SCORE_QUESTIONS})
            rs.raw_text = f"\n\n{SEPARATOR}\n\n".join(x.text for x in completions)
            sets.append(rs)
            spent.append(list(completions))

        # Missing scores: a short question each, with the review (not the paper) as context.
        asks = [(i, j, name) for i, rs in enumerate(sets) for j, review in enumerate(rs.reviews)
                for name in SCORE_QUESTIONS if getattr(review, name) is None]
        if asks and self.backend.supports_choice_scoring:
            self._choose_scores(sets, asks, progress)
            asks = []
        if asks:
            requests = [GenerationRequest(messages=[{"role": "user", "content": score_question_prompt(
                render_review(sets[i].reviews[j]), name)}], n=1, max_new_tokens=8, temperature=0.0,
                seed=c.seed, stage="review") for i, j, name in asks]
            for (i, j, name), completions in zip(asks, self.backend.generate(requests, progress=progress)):
                low, high = SCORE_RANGES[name]
                value, problem = parse_score(completions[0].text, low, high, f"review {j + 1}: {name}",
                                             SCORE_WORDS_1_4 if high == 4 else None)
                setattr(sets[i].reviews[j], name, value)
                sets[i].score_sources[j][name] = "asked" if value is not None else "missing"
                spent[i].append(completions[0])
                if problem:
                    sets[i].problems.append(problem + " (asked separately)")

        requests = [GenerationRequest(messages=[{"role": "user", "content": meta_review_prompt(
            render_review_set_text(rs))}], n=1, max_new_tokens=256,
            **options) for rs in sets]
        for rs, completions, costs in zip(sets, self.backend.generate(requests, progress=progress), spent):
            meta = parse_review_set(completions[0].text)
            rs.meta_review = meta.meta_review or completions[0].text.strip()
            rs.decision = meta.decision
            if rs.decision is None and self.backend.supports_choice_scoring:
                question = [{"role": "user", "content": meta_review_prompt(render_review_set_text(rs))
                             + "\n\nAnswer with one word: Accept or Reject."}]
                accept, reject = self.backend.choice_logprobs([question], ["Accept", "Reject"])[0]
                rs.decision = "Accept" if accept > reject else "Reject"
                rs.problems.append(DECISION_CHOSEN)
            if rs.decision is None:
                rs.problems.append("missing paper decision")
            rs.raw_text += f"\n\n{SEPARATOR}\n\n{completions[0].text}"
            costs.append(completions[0])
            _account(rs, costs)
        return [(rs, notes) for rs, (_, notes) in zip(sets, prepared)]


    def _choose_scores(self, sets: list[ReviewSet], asks: list[tuple[int, int, str]], progress: bool = False) -> None:
        """Missing scores as constrained choices: the allowed value the model finds most likely as its answer
        (a small model asked for a number often writes "1.5", "100" or prose instead)."""
        for name in _steps([n for n in SCORE_QUESTIONS if any(a[2] == n for a in asks)], progress,
                           "review: missing scores chosen by likelihood"):
            mine = [(i, j) for i, j, n in asks if n == name]
            if not mine:
                continue
            choices = SCORE_CHOICES[name]
            conversations = [[{"role": "user", "content": score_question_prompt(render_review(sets[i].reviews[j]),
                                                                                name)}] for i, j in mine]
            for (i, j), logps in zip(mine, self.backend.choice_logprobs(conversations, choices)):
                best = max(range(len(choices)), key=lambda k: logps[k])
                setattr(sets[i].reviews[j], name, int(choices[best]))
                sets[i].score_sources[j][name] = "chosen"
                sets[i].problems.append(f"review {j + 1}: {name} chosen by the model's likelihood among "
                                        f"{'/'.join(choices)} (it did not write one)")


def _steps(items: list, progress: bool, desc: str):
    """`items`, with a bar that moves once per item when `progress` (each item is one model call)."""
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="step", dynamic_ncols=True)


def _per_review_problems(problems: list[str], j: int) -> list[str]:
    """What parsing one reviewer's completion found wrong, renumbered for reviewer j. Missing parts are left
    out: a lone review has no meta-review or decision, and missing scores are asked for (see score_sources)."""
    out = []
    for p in problems:
        if p.startswith("missing ") or p == "no reviews found" or ": missing " in p:
            continue
        out.append(f"review {j + 1}: {p.removeprefix('review 1: ')}")
    return out


def render_review_set_text(rs: ReviewSet) -> str:
    return f"\n\n{SEPARATOR}\n\n".join(render_review(r) for r in rs.reviews)


# Allowed answers on the ICLR 2024 form (the rating form uses only these six values).
SCORE_CHOICES = {"soundness": ["1", "2", "3", "4"], "presentation": ["1", "2", "3", "4"],
                 "contribution": ["1", "2", "3", "4"], "rating": ["1", "3", "5", "6", "8", "10"],
                 "confidence": ["1", "2", "3", "4", "5"]}


def _account(rs: ReviewSet, completions: list[Completion]) -> None:
    rs.provenance = Provenance(prompt_tokens=sum(c.prompt_tokens for c in completions),
                               completion_tokens=sum(c.completion_tokens for c in completions),
                               seconds=round(sum(c.seconds for c in completions), 3))
