"""The CycleReviewer review-set text <-> ReviewSet, both ways.

Form A (8B/70B models): reviews separated by a line of asterisks, fields as `## Summary` ... `## Confidence`,
the last block `## Meta Review` and `## Paper Decision`. Form B (123B model): each review opens with
`## Reviewer N` and uses `###` field headers. The parser reads both and the many variants models write; it
never raises on model text and lists what it could not read in `ReviewSet.problems`.
"""

from __future__ import annotations

import re
from typing import Optional

from ..schema import Review, ReviewSet
from .markdown import as_text, parse_score, read_header

SCORE_WORDS_1_4 = {"poor": 1, "fair": 2, "good": 3, "excellent": 4}

# normalised header name -> Review field (or "reviewer", "meta_review", "decision")
FIELD_ALIASES: dict[str, str] = {
    "summary": "summary", "summaryofthepaper": "summary", "papersummary": "summary",
    "soundness": "soundness", "technicalsoundness": "soundness",
    "presentation": "presentation", "clarity": "presentation",
    "contribution": "contribution", "significance": "contribution",
    "strengths": "strengths", "strength": "strengths", "strengthsandweaknesses": "strengths",
    "strengthandweaknesses": "strengths", "pros": "strengths",
    "weaknesses": "weaknesses", "weakness": "weaknesses", "cons": "weaknesses",
    "questions": "questions", "question": "questions", "questionsforauthors": "questions",
    "questionsfortheauthors": "questions",
    "flagforethicsreview": "ethics_flag", "ethicsflag": "ethics_flag", "ethicsreview": "ethics_flag",
    "flagforethics": "ethics_flag", "ethics": "ethics_flag", "ethicalconcerns": "ethics_flag",
    "rating": "rating", "overallrating": "rating", "recommendation": "rating", "overallscore": "rating",
    "overallrecommendation": "rating", "score": "rating",
    "confidence": "confidence", "reviewerconfidence": "confidence",
    "reviewer": "reviewer", "review": "reviewer", "officialreview": "reviewer",
    "metareview": "meta_review", "metareviewer": "meta_review", "areachairmetareview": "meta_review",
    "paperdecision": "decision", "decision": "decision", "finaldecision": "decision",
}
SCORE_RANGES = {"soundness": (1, 4), "presentation": (1, 4), "contribution": (1, 4), "rating": (1, 10),
                "confidence": (1, 5)}
TEXT_FIELDS = ("summary", "strengths", "weaknesses", "questions", "ethics_flag")
REQUIRED_FIELDS = ("summary", "soundness", "presentation", "contribution", "strengths", "weaknesses",
                   "rating", "confidence")
RENDER_ORDER = [("summary", "Summary"), ("soundness", "Soundness"), ("presentation", "Presentation"),
                ("contribution", "Contribution"), ("strengths", "Strengths"), ("weaknesses", "Weaknesses"),
                ("questions", "Questions"), ("ethics_flag", "Flag For Ethics Review"), ("rating", "Rating"),
                ("confidence", "Confidence")]
SEPARATOR = "*" * 10
_SEPARATOR_LINE = re.compile(r"^\s*(?:\*\s*){3,}$")
_KNOWN = set(FIELD_ALIASES)


def _pieces(text: str) -> list[tuple[str, str]]:
    """The text as (field, content) pieces in order; ("sep", "") marks a separator line."""
    pieces: list[tuple[str, list[str]]] = [("preamble", [])]
    for line in text.split("\n"):
        if _SEPARATOR_LINE.match(line):
            pieces.append(("sep", []))
            continue
        header = read_header(line, _KNOWN)
        if header is None:
            pieces[-1][1].append(line)
            continue
        pieces.append((FIELD_ALIASES[header.key], [header.rest] if header.rest else []))
    return [(name, "\n".join(lines).strip()) for name, lines in pieces]


def _review_from_fields(fields: dict[str, str], index: int, problems: list[str]) -> Review:
    review = Review()
    for name in TEXT_FIELDS:
        if name in fields:
            setattr(review, name, fields[name])
    for name, (low, high) in SCORE_RANGES.items():
        if name not in fields:
            continue
        words = SCORE_WORDS_1_4 if high == 4 else None
        value, problem = parse_score(fields[name], low, high, f"review {index}: {name}", words)
        setattr(review, name, value)
        if problem:
            problems.append(problem)
    for name in REQUIRED_FIELDS:
        if name not in fields:
            problems.append(f"review {index}: missing {name}")
    return review


def parse_decision(text: str) -> Optional[str]:
    """Accept if the first line says accept (and not reject), else Reject; None for empty text."""
    first = next((line.strip().lower() for line in text.split("\n") if line.strip()), "")
    if not first:
        return None
    return "Accept" if "accept" in first and "reject" not in first else "Reject"


def parse_review_set(text: str | bytes) -> ReviewSet:
    """Parse a CycleReviewer-style review set. Never raises on model output; problems are listed."""
    text = as_text(text)
    if "\\boxed_review" in text or "\\boxed_simreviewers" in text:  # DeepReviewer output: formats/deepreviewer.py
        from .deepreviewer import parse_deepreviewer
        return parse_deepreviewer(text)
    result = ReviewSet(raw_text=text)
    problems = result.problems
    reviews: list[dict[str, str]] = []
    current: dict[str, str] = {}

    def close() -> None:
        nonlocal current
        if any(k in current for k in TEXT_FIELDS + tuple(SCORE_RANGES)):
            reviews.append(current)
        current = {}

    for name, content in _pieces(text):
        if name == "preamble":
            continue
        if name in ("sep", "reviewer"):
            close()
        elif name == "meta_review":
            close()
            result.meta_review = content if not result.meta_review else result.meta_review + "\n\n" + content
        elif name == "decision":
            close()
            if result.decision is None:
                result.decision = parse_decision(content)
        else:
            # The same field again starts a new review (no separator), unless the first was an empty header
            # restated on the next line ("### Rating" then "Rating: 5").
            if current.get(name):
                close()
            current[name] = content
    close()

    result.reviews = [_review_from_fields(fields, i + 1, problems) for i, fields in enumerate(reviews)]
    if not result.reviews:
        problems.append("no reviews found")
    if not result.meta_review:
        problems.append("missing meta review")
    if result.decision is None:
        problems.append("missing paper decision")
    return result


def render_review(review: Review, form: str = "A") -> str:
    """One review in canonical form: `## Field` (form A) or `### Field` (form B) headers."""
    mark = "##" if form == "A" else "###"
    parts = []
    for name, title in RENDER_ORDER:
        value = getattr(review, name)
        if value is None or value == "":
            continue
        parts.append(f"{mark} {title}\n\n{value}")
    return "\n\n".join(parts)


def render_review_set(review_set: ReviewSet, form: str = "A") -> str:
    """The canonical text of a review set; parse_review_set(render_review_set(x)) gives x back."""
    if form not in ("A", "B"):
        raise ValueError(f"form must be 'A' or 'B', got {form!r}")
    tail = []
    if review_set.meta_review:
        tail.append(f"## Meta Review\n\n{review_set.meta_review}")
    if review_set.decision:
        tail.append(f"## Paper Decision\n\n{review_set.decision}")
    if form == "A":
        blocks = [render_review(r, "A") for r in review_set.reviews]
        if tail:
            blocks.append("\n\n".join(tail))
        return f"\n\n{SEPARATOR}\n\n".join(blocks) + "\n"
    blocks = [f"## Reviewer {i + 1}\n\n{render_review(r, 'B')}" for i, r in enumerate(review_set.reviews)]
    return "\n\n".join(blocks + tail) + "\n"
