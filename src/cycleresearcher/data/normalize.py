"""One record shape for every source, and the review-field normalisation the sources share.

Sources write scores in many dresses: OpenReview v2 wraps every value as {"value": ...}; ratings arrive as
6, "6", "6: marginally above the acceptance threshold" or "6/10"; sub-scores as "3 good"; decisions as
"Accept (Poster)", "Invite to Workshop Track" or a venue string such as "ICLR 2024 poster". Everything here
turns them into the schema's types without guessing: a value that cannot be read becomes None and a problem
is recorded, never a clamped number.

Human reviews become `schema.Review` records whose text renders in the CycleReviewer format and parses
back unchanged (see `review_from_text`): headers the reviewer wrote (Summary, Pros, Cons, Questions, ...)
become the form's fields, and any other line that the review parser would take for a header is turned into
a bullet so it stays text.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import InputError
from ..formats.markdown import as_text, parse_score, read_header
from ..formats.review import FIELD_ALIASES as REVIEW_HEADERS
from ..formats.review import SCORE_WORDS_1_4
from ..schema import Record, Reference, Review, Section

log = logging.getLogger(__name__)

ACCEPT, REJECT = "Accept", "Reject"

# Headers human reviewers write, mapped to the Review text field they open. "limitations" (NeurIPS) is kept as
# a labelled paragraph of the weaknesses: the CycleReviewer form has no field for it.
HUMAN_HEADERS: dict[str, str] = {
    "summary": "summary", "summaryofthepaper": "summary", "papersummary": "summary",
    "summaryofcontributions": "summary", "summaryofthereview": "summary",
    "strengths": "strengths", "strength": "strengths", "pros": "strengths", "positives": "strengths",
    "strengthsandweaknesses": "strengths", "strengthandweaknesses": "strengths",
    "weaknesses": "weaknesses", "weakness": "weaknesses", "cons": "weaknesses", "negatives": "weaknesses",
    "questions": "questions", "question": "questions", "questionsforauthors": "questions",
    "questionsfortheauthors": "questions",
    "limitations": "limitations",
}
_STRUCTURE_KNOWN = set(HUMAN_HEADERS) | set(REVIEW_HEADERS)
_REVIEW_KNOWN = set(REVIEW_HEADERS)
_SEPARATOR_LINE = re.compile(r"^\s*(?:\*\s*){3,}$")  # formats/review.py splits reviews on such lines
_FLATTENED_APOSTROPHE = re.compile(r"(\w)\*(s|t|re|ve|ll|d|m)\b")  # "it*s" in old OpenReview exports


@dataclass
class PaperRecord(Record):
    """A paper with its reviews, as every source (OpenReview, arXiv, PeerRead, local dumps) yields it."""

    paper_id: str
    title: str = ""
    abstract: str = ""
    keywords: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    venue: str = ""  # "ICLR", "NeurIPS", an OpenReview venue id, "arXiv"
    year: Optional[int] = None
    decision: Optional[str] = None  # "Accept" | "Reject" | None when unknown
    decision_raw: str = ""  # as the source wrote it ("Accept (Poster)", "Invite to Workshop Track")
    reviews: list[Review] = field(default_factory=list)
    review_extras: list[dict[str, Any]] = field(default_factory=list)  # per review: scores the form lacks, raw strings
    meta_review: str = ""
    rating_scale: str = "1-10"  # "1-10" (ICLR, NeurIPS <= 2024) or "1-6" (NeurIPS 2025); never pooled silently
    text: str = ""  # full text when the source has it (markdown or LaTeX-derived plain text)
    text_format: str = ""  # "markdown" | "latex" | "sections" | ""
    sections: list[Section] = field(default_factory=list)
    latex: str = ""  # the LaTeX source after \input expansion, when the source is LaTeX (arXiv)
    references: list[Reference] = field(default_factory=list)
    source: str = ""  # where it came from (file, repo@commit, API)
    pdf_path: str = ""  # local PDF, only when one was asked for
    problems: list[str] = field(default_factory=list)  # normalisation problems, for the dataset card

    @property
    def ratings(self) -> list[int]:
        return [r.rating for r in self.reviews if r.rating is not None]


# ---- scores --------------------------------------------------------------------------------------------------

def unwrap(value: Any) -> Any:
    """OpenReview API v2 wraps every content value as {"value": ...}; v1 does not. Either gives the bare value."""
    if isinstance(value, dict) and "value" in value and len(value) <= 2:
        return value["value"]
    return value


def to_score(value: Any, low: int, high: int, name: str, problems: Optional[list[str]] = None) -> Optional[int]:
    """An integer score in [low, high] from 6, 6.0, "6", "6: marginally above ...", "6/10" or "3 good".

    Missing values give None silently; unreadable or out-of-range values give None and a problem.
    """
    value = unwrap(value)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        _problem(problems, f"{name}: boolean {value!r} is not a score")
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            _problem(problems, f"{name}: {value!r} is not a finite number")
            return None
        if value != int(value) or not low <= value <= high:
            _problem(problems, f"{name}: {value!r} is not a whole number in {low}-{high}")
            return None
        return int(value)
    if isinstance(value, list) and len(value) == 1:
        return to_score(value[0], low, high, name, problems)
    if isinstance(value, (list, dict)):
        _problem(problems, f"{name}: {type(value).__name__} is not a score")
        return None
    words = SCORE_WORDS_1_4 if high == 4 else None
    score, problem = parse_score(str(value), low, high, name, words)
    if problem:
        _problem(problems, problem)
    return score


def parse_rating(value: Any, high: int = 10, problems: Optional[list[str]] = None) -> Optional[int]:
    """Overall rating: "6: marginally above the acceptance threshold" | 6 | "6/10" -> 6.

    `high` is 10 (ICLR, NeurIPS <= 2024) or 6 (NeurIPS 2025).
    """
    return to_score(value, 1, high, "rating", problems)


def parse_subscore(value: Any, name: str = "subscore", problems: Optional[list[str]] = None) -> Optional[int]:
    """Soundness / presentation / contribution on 1-4: "3 good" | "3: good" | 3 | "good" -> 3."""
    return to_score(value, 1, 4, name, problems)


def parse_confidence(value: Any, problems: Optional[list[str]] = None) -> Optional[int]:
    """Confidence on 1-5: "4: You are confident in your assessment, but not absolutely certain" -> 4."""
    return to_score(value, 1, 5, "confidence", problems)


def _problem(problems: Optional[list[str]], text: str) -> None:
    if problems is not None:
        problems.append(text)
    log.debug("normalise: %s", text)


# ---- decisions -----------------------------------------------------------------------------------------------

_ACCEPT_VENUE = re.compile(r"\b(oral|poster|spotlight|notable|accept(ed)?)\b")


def normalize_decision(raw: Any) -> Optional[str]:
    """Accept / Reject from a decision string, a boolean or a venue string; None when it says neither.

    "Invite to Workshop Track" (ICLR 2017-2018) is Reject: it was not a main-conference acceptance.
    Withdrawn papers have no decision (None): they are skipped, not counted as rejections.
    """
    raw = unwrap(raw)
    if raw is None:
        return None
    if isinstance(raw, bool):
        return ACCEPT if raw else REJECT
    text = " ".join(str(raw).lower().split())
    if not text or "withdraw" in text:
        return None
    if "reject" in text or "invite to workshop" in text or text.startswith("submitted to"):
        return REJECT
    if _ACCEPT_VENUE.search(text):
        return ACCEPT
    return None


def rating_scale_for(venue: str, year: Optional[int]) -> str:
    """The overall-rating scale of a venue and year: NeurIPS moved to 1-6 in 2025; ICLR and older NeurIPS use 1-10."""
    if "neurips" in venue.lower() and year is not None and year >= 2025:
        return "1-6"
    return "1-10"


def scale_max(rating_scale: str) -> int:
    m = re.fullmatch(r"\s*1\s*-\s*(\d{1,3})\s*", rating_scale if isinstance(rating_scale, str) else "")
    if not m or int(m.group(1)) < 2:
        raise InputError(f"rating scale must look like '1-10', got {str(rating_scale)[:40]!r}")
    return int(m.group(1))


# ---- text ----------------------------------------------------------------------------------------------------

def repair_flattened(text: str) -> str:
    """Undo the old OpenReview export's apostrophes written as '*' ("it*s" -> "it's"); see reviews_real/README."""
    return _FLATTENED_APOSTROPHE.sub(r"\1'\2", text)


def neutralise_review_lines(text: str) -> str:
    """Keep text as text inside a CycleReviewer review set.

    A line that formats/review.py would read as a field header ("Clarity: good", "## Rating", "Review:") becomes
    a bullet ("- Clarity: good"), and a line of asterisks (the review separator) becomes "---". Every other line
    is left exactly as it is, so parse(render(review)) gives the text back.
    """
    out = []
    for line in as_text(text).split("\n"):
        if _SEPARATOR_LINE.match(line):
            out.append("---")
        elif read_header(line, _REVIEW_KNOWN) is not None:
            out.append("- " + line.strip().lstrip("#").strip())
        else:
            out.append(line)
    return "\n".join(out).strip()


def structure_review_text(text: str) -> dict[str, str]:
    """Split free review text on the headers its reviewer wrote: {"summary", "strengths", "weaknesses", "questions"}.

    Text before any header is the summary. A review with no headers is all summary (ICLR 2017-2018 reviews are
    free text). Repeated headers append to their field. Values are neutralised (see neutralise_review_lines).
    """
    fields: dict[str, list[str]] = {"summary": [], "strengths": [], "weaknesses": [], "questions": []}
    current = "summary"
    for line in as_text(text).split("\n"):
        header = read_header(line, _STRUCTURE_KNOWN)
        target = HUMAN_HEADERS.get(header.key) if header is not None else None
        if target is None:
            fields[current].append(line)
            continue
        current = "weaknesses" if target == "limitations" else target
        lines = fields[current]
        while lines and not lines[-1].strip():  # one blank line between appended pieces, not several
            lines.pop()
        if lines:
            lines.append("")
        if target == "limitations":
            lines.append(f"Limitations: {header.rest}" if header.rest else "Limitations:")
        elif header.rest:
            fields[current].append(header.rest)
    return {name: neutralise_review_lines("\n".join(lines)) for name, lines in fields.items()}


def review_from_text(text: str, rating: Any = None, confidence: Any = None, *, soundness: Any = None,
                     presentation: Any = None, contribution: Any = None, rating_high: int = 10,
                     structure: bool = True, problems: Optional[list[str]] = None, **fields: str) -> Review:
    """A schema.Review from a human review: free text (structured on its own headers) plus scores.

    Extra keyword fields (summary=, strengths=, weaknesses=, questions=) come from structured forms (OpenReview
    2022+) and are used as given, neutralised; `text` then only fills the fields they leave empty.
    """
    parts = structure_review_text(text) if structure else {"summary": neutralise_review_lines(text)}
    for name in ("summary", "strengths", "weaknesses", "questions"):
        given = fields.pop(name, None)
        if given:
            parts[name] = neutralise_review_lines(str(given))
    if fields:
        raise TypeError(f"review_from_text: unknown fields {sorted(fields)}")
    return Review(
        summary=parts.get("summary", ""), strengths=parts.get("strengths", ""),
        weaknesses=parts.get("weaknesses", ""), questions=parts.get("questions", ""),
        soundness=parse_subscore(soundness, "soundness", problems),
        presentation=parse_subscore(presentation, "presentation", problems),
        contribution=parse_subscore(contribution, "contribution", problems),
        rating=parse_rating(rating, rating_high, problems),
        confidence=parse_confidence(confidence, problems),
    )


def clean_meta_review(text: Optional[str], flattened: bool = False) -> str:
    """The meta-review text without a leading "DECISION: ..." block (the decision is its own field)."""
    if not text:
        return ""
    text = as_text(text).strip()
    if flattened:
        text = repair_flattened(text)
    m = re.match(r"^DECISION:\s*\n.*?(?:\n\s*\n|$)(?:COMMENT:\s*\n?)?", text, re.S | re.I)
    if m:
        text = text[m.end():].strip()
    return neutralise_review_lines(text)


def split_list(value: Any) -> list[str]:
    """Keywords or authors as a list, from a list, a comma/semicolon string or a v2-wrapped value.

    Items that are not text (numbers, nested lists or objects) are dropped rather than stringified."""
    value = unwrap(value)
    if value is None:
        return []
    if isinstance(value, str):
        return [p.strip() for p in re.split(r"[;,]", value) if p.strip()]
    if not isinstance(value, (list, tuple)):
        return []
    return [v.strip() for v in value if isinstance(v, str) and v.strip()]
