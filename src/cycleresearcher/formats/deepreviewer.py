"""DeepReviewer output (the CycleResearcher group's later reviewer) -> ReviewSet.

DeepReviewer writes, after a line naming its mode (Fast, Standard or Best):

    \\boxed_simreviewers{            (standard/best modes)
    ## Reviewer 1
    ### Summary ... ### Soundness ... ### Weaknesses (#### Some Related Works, #### comment) ...
    ### Suggestions ... ### Questions ... ### Rating ... ### Confidence
    **********
    ## Reviewer 2 ...
    }
    \\boxed_verification{ ...checks of each reviewer's weaknesses against the paper... }
    \\boxed_review{
    ## Summary: ... ## Soundness: 2.67 ... ## Rating: 5.67 ## Confidence: 3.0 ## Decision: Reject
    }

Each box closes on a line holding only "}" (the bodies contain LaTeX braces, so braces are not counted).
The simulated reviewers become the ReviewSet's reviews; the final `\\boxed_review` is the meta-review (its
averaged, fractional scores stay in its text and in `DeepReview.final_scores`), never an extra reviewer. In
fast mode there are no simulated reviewers, so the ReviewSet has no ratings: that is listed as a problem.
Like every parser here it never raises on model text; what it could not read is listed in `problems`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..schema import ReviewSet
from .markdown import as_text, first_number
from .review import parse_decision, parse_review_set

_OPEN = re.compile(r"\\boxed_([A-Za-z]+)\s*\{")
_CLOSE_LINE = re.compile(r"^\s*\}\s*$", re.MULTILINE)
_MODE = re.compile(r"\b(fast|standard|best)\s+mode\b", re.IGNORECASE)
_SUGGESTIONS = re.compile(r"^\s{0,3}#{1,6}\s*suggestions?\s*:?\s*$", re.IGNORECASE | re.MULTILINE)
_SUBHEADER = re.compile(r"^\s{0,3}#{4,6}\s*(some related works|comment)\s*:?\s*$", re.IGNORECASE | re.MULTILINE)
_FINAL_FIELD = re.compile(r"^\s{0,3}#{1,6}\s*([A-Za-z][A-Za-z _]*?)\s*:?\s*$", re.MULTILINE)
FINAL_SCORES = ("soundness", "presentation", "contribution", "rating", "confidence")
_NOT_FOR_SIMREVIEWS = ("missing meta review", "missing paper decision")


@dataclass
class DeepReview:
    """Everything in one DeepReviewer output: the ReviewSet plus what it has no field for."""

    review_set: ReviewSet
    mode: str = ""  # "fast" | "standard" | "best" | "" when not said
    verification: str = ""
    final_scores: dict[str, float] = field(default_factory=dict)  # the meta-review's (averaged) scores
    boxes: list[str] = field(default_factory=list)  # box names in order, e.g. ["simreviewers", "verification", "review"]


def looks_like_deepreviewer(text: str) -> bool:
    """True when the text holds a DeepReviewer box (`\\boxed_review{` or `\\boxed_simreviewers{`)."""
    return bool(re.search(r"\\boxed_(review|simreviewers)\s*\{", text))


def boxes(text: str) -> list[tuple[str, str, bool]]:
    """(name, body, closed) for each `\\boxed_NAME{ ... }` in order; an unclosed box runs to the next box."""
    opens = list(_OPEN.finditer(text))
    out = []
    for i, m in enumerate(opens):
        limit = opens[i + 1].start() if i + 1 < len(opens) else len(text)
        close = _CLOSE_LINE.search(text, m.end(), limit)
        body = text[m.end(): close.start() if close else limit]
        out.append((m.group(1).lower(), body.strip("\n"), close is not None))
    return out


def parse_deepreviewer(text: str | bytes) -> ReviewSet:
    """The ReviewSet of a DeepReviewer output (see `parse_deepreviewer_output` for the rest)."""
    return parse_deepreviewer_output(text).review_set


def parse_deepreviewer_output(text: str | bytes) -> DeepReview:
    """Parse DeepReviewer output. Never raises on model text; problems go to `review_set.problems`."""
    text = as_text(text)
    result = ReviewSet(raw_text=text)
    problems = result.problems
    found = boxes(text)
    first_box = _OPEN.search(text)
    mode = _MODE.search(text[: first_box.start()] if first_box else text)
    deep = DeepReview(review_set=result, mode=mode.group(1).lower() if mode else "", boxes=[n for n, _, _ in found])
    for name, _, closed in found:
        if not closed:
            problems.append(f"\\boxed_{name} is not closed (output cut off?)")

    sims = [body for name, body, _ in found if name == "simreviewers"]
    if sims:
        parsed = parse_review_set(_clean_simreviews("\n\n**********\n\n".join(sims)))
        result.reviews = parsed.reviews
        problems.extend(p for p in parsed.problems if p not in _NOT_FOR_SIMREVIEWS)
    else:
        problems.append("no simulated reviewers (\\boxed_simreviewers)" + (" in fast mode" if deep.mode == "fast" else "")
                        + ": no reviewer ratings; the final review's scores stay with the meta-review")

    deep.verification = "\n\n".join(body for name, body, _ in found if name == "verification").strip()
    finals = [body for name, body, _ in found if name == "review"]
    if finals:
        _read_final(finals[-1], result, deep)
    else:
        problems.append("missing final review (\\boxed_review)")
    if result.decision is None:
        problems.append("missing paper decision")
    return deep


def _clean_simreviews(body: str) -> str:
    """The reviewer blocks in the CycleReviewer form B that parse_review_set reads.

    The empty `#### Some Related Works` / `#### comment` sub-headers are dropped, and `### Suggestions`
    (no field on the ICLR form) becomes a bold line, so the suggestions stay in the weaknesses they follow.
    A nested `\\boxed_` would send the text back here, so it is defused.
    """
    body = _SUBHEADER.sub("", body)
    body = _SUGGESTIONS.sub("**Suggestions**", body)
    return body.replace("\\boxed_", "\\boxed ")


def _read_final(body: str, result: ReviewSet, deep: DeepReview) -> None:
    """The final review: its text (without the decision) is the meta-review; its scores are kept as numbers."""
    sections = _sections(body)
    decision = sections.pop("decision", None)
    if decision is not None:
        result.decision = parse_decision(decision)
    for name in FINAL_SCORES:
        value = first_number(sections.get(name, "")[:40])
        if value is not None:
            deep.final_scores[name] = value
        elif name == "rating":
            result.problems.append(f"final review: missing {name}")
    cut = re.search(r"^\s{0,3}#{1,6}\s*decision\b", body, re.IGNORECASE | re.MULTILINE)
    result.meta_review = (body[: cut.start()] if cut else body).strip()
    if not result.meta_review:
        result.problems.append("missing meta review")


def _sections(body: str) -> dict[str, str]:
    """{lower-case header name: content} of the `## Name:` sections of the final review."""
    heads = list(_FINAL_FIELD.finditer(body))
    out: dict[str, str] = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(body)
        out.setdefault(m.group(1).strip().lower(), body[m.end(): end].strip())
    return out

