"""Local dumps as PaperRecords: the JSON-lines files of shared/data (and anything of the same shape).

Three shapes are read, told apart by their fields, not their names:
- review dumps (`reviews_real/reviews.jsonl`, `reviews_neurips2025.jsonl`): one paper per line with `reviews`
  [{rating, confidence, text, ...}], `decision`, `meta_review`, `venue`, `year`;
- full-text dumps with inline reviews (`neurips2025_fulltext/papers.jsonl.gz`): the same plus `text`, `accepted`;
- the PeerRead transcription (`peerread_iclr2017/reviews.jsonl`): `accepted`, `authors` as a string, and
  reviews with `reviewer` and `text_truncated`.
A sibling `papers.jsonl` that holds full text (`text`) or parsed sections (`sections`) for the same paper ids is
joined in, so `reviews_neurips2025.jsonl` gets its papers' text.
"""

from __future__ import annotations

import gzip
import logging
import math
import re
import zlib
from pathlib import Path
from typing import Any, Iterator, Optional

from .. import limits
from ..errors import InputError
from ..schema import Section
from .normalize import (PaperRecord, clean_meta_review, normalize_decision, rating_scale_for, repair_flattened,
                        review_from_text, scale_max, split_list)

log = logging.getLogger(__name__)

_ID_PREFIX = re.compile(r"^([a-z]+)(\d{4})_")
_VENUE_NAMES = {"iclr": "ICLR", "neurips": "NeurIPS", "nips": "NeurIPS", "icml": "ICML", "acl": "ACL"}


_YEARS = (1900, 2100)  # a paper's year outside this is a broken field, not a paper


class DumpFormatError(InputError):
    """A local file is not a dump this module can read."""


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a .jsonl or .jsonl.gz file; a bad line, a .gz that is not gzip, text that is not UTF-8 or a
    line past limits.MAX_JSON_BYTES / MAX_JSON_DEPTH is an error that names the file (and line)."""
    path = Path(path)
    limits.check_regular_file(path, "JSON-lines file")
    opener = gzip.open if path.name.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            while True:
                line = handle.readline(limits.MAX_JSON_BYTES + 1)
                if not line:
                    break
                number += 1
                if len(line) > limits.MAX_JSON_BYTES:
                    raise limits.exceeded(f"{path}:{number}", "a line", "MAX_JSON_BYTES")
                if not line.strip():
                    continue
                row = limits.loads_json(line, f"{path}:{number}")
                if not isinstance(row, dict):
                    raise DumpFormatError(f"{path}:{number}: expected a JSON object per line")
                yield row
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DumpFormatError(f"{path}: cannot be read after line {number} ({type(exc).__name__}: {exc})") from None
    except UnicodeDecodeError as exc:
        raise DumpFormatError(f"{path}: line {number + 1} is not UTF-8 text ({exc.reason})") from None


def _year(value: Any, fallback: Optional[int], problems: list[str]) -> Optional[int]:
    """A publication year from 2017, 2017.0 or "2017"; anything else (1e309, "abc", 10**10) is a problem."""
    if value is None or value == "":
        return fallback
    number: Optional[float] = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value) if abs(value) < 1e6 else math.inf
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{4}\s*", value):
        number = float(value)
    if number is None or not math.isfinite(number) or number != int(number) \
            or not _YEARS[0] <= number <= _YEARS[1]:
        problems.append(f"year {str(value)[:40]!r} is not a year; using {fallback}")
        return fallback
    return int(number)


def _text(row: dict[str, Any], name: str, problems: list[str]) -> str:
    """A text field: a string, a number written as text, or "" with a problem for lists and objects."""
    value = row.get(name)
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    problems.append(f"{name}: {type(value).__name__} where text was expected; left empty")
    return ""


def venue_year_from_id(paper_id: str) -> tuple[str, Optional[int]]:
    """("ICLR", 2017) from "iclr2017_HJWHIKqgl"; ("", None) when the id has no such prefix."""
    m = _ID_PREFIX.match(paper_id)
    if not m:
        return "", None
    return _VENUE_NAMES.get(m.group(1), m.group(1).upper()), int(m.group(2))


def record_from_row(row: dict[str, Any], source: str = "") -> PaperRecord:
    """One dump row (any of the three shapes) as a PaperRecord."""
    raw_id = row.get("paper_id") or row.get("id") or ""
    paper_id = str(raw_id).strip() if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else ""
    if not paper_id:
        raise DumpFormatError(f"{source}: a row has no paper_id (a string or number)")
    problems: list[str] = []
    id_venue, id_year = venue_year_from_id(paper_id)
    venue = _text(row, "venue", problems) or id_venue
    year = _year(row.get("year"), id_year, problems)
    raw_decision = row.get("decision_raw") or row.get("decision")
    if raw_decision is None and "accepted" in row:
        raw_decision = row["accepted"] if isinstance(row["accepted"], bool) else None
    if isinstance(raw_decision, (list, dict)):
        problems.append(f"decision: {type(raw_decision).__name__} is not a decision")
        raw_decision = None
    decision = normalize_decision(raw_decision)
    scale = row.get("rating_scale") or rating_scale_for(venue, year)
    try:
        high = scale_max(scale)
    except InputError as exc:
        problems.append(f"{exc}; using 1-10")
        scale, high = "1-10", 10
    record = PaperRecord(
        paper_id=paper_id, title=_text(row, "title", problems).strip(),
        abstract=_text(row, "abstract", problems).strip(),
        keywords=split_list(row.get("keywords")), authors=split_list(row.get("authors")),
        venue=venue, year=year, decision=decision,
        decision_raw="" if raw_decision is None else str(raw_decision),
        rating_scale=scale, source=_text(row, "source", problems) or source, problems=problems,
    )
    flattened = bool(row.get("text_whitespace_flattened"))
    reviews = row.get("reviews") or []
    if not isinstance(reviews, list):
        problems.append(f"reviews: {type(reviews).__name__} where a list was expected; no reviews read")
        reviews = []
    for index, raw in enumerate(reviews):
        if not isinstance(raw, dict):
            problems.append(f"review {index + 1}: {type(raw).__name__} where an object was expected; skipped")
            continue
        record.reviews.append(_review(raw, flattened, high, record.problems, index))
        record.review_extras.append({k: raw[k] for k in ("review_title", "reviewer", "originality", "date",
                                                        "text_truncated", "clarity", "impact") if k in raw})
    record.meta_review = clean_meta_review(_text(row, "meta_review", problems),
                                           bool(row.get("meta_review_whitespace_flattened")))
    _attach_text(record, row)
    return record


def _review(raw: dict[str, Any], flattened: bool, high: int, problems: list[str], index: int):
    local: list[str] = []
    text = _text(raw, "text", local) or _text(raw, "comments", local)
    if flattened:
        text = repair_flattened(text)
    # NeurIPS 2025 sub-scores (1-4): clarity is the form's presentation, impact its significance (contribution);
    # "quality" (soundness) was not scraped and originality has no field on the ICLR form (kept in extras).
    review = review_from_text(text, raw.get("rating"), raw.get("confidence"),
                              presentation=raw.get("clarity"), contribution=raw.get("impact"),
                              rating_high=high, problems=local)
    problems.extend(f"review {index + 1}: {p}" for p in local)
    return review


def _attach_text(record: PaperRecord, row: dict[str, Any]) -> None:
    text = _text(row, "text", record.problems)
    if text:
        record.text = text
        record.text_format = "markdown"
    sections = row.get("sections")
    if sections and not isinstance(sections, list):
        record.problems.append(f"sections: {type(sections).__name__} where a list was expected; ignored")
        sections = None
    if sections:
        record.sections = [Section(heading=_text(s, "heading", record.problems), text=_text(s, "text", record.problems))
                           for s in sections if isinstance(s, dict)]
        if not record.text:
            record.text = "\n\n".join(f"## {s.heading}\n\n{s.text}" if s.heading else s.text
                                      for s in record.sections)
            record.text_format = "sections"


def load_dump(path: Path, join_papers: bool = True) -> list[PaperRecord]:
    """Every paper of a local JSON-lines dump, with a sibling `papers.jsonl` joined in when its ids match."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such dump file: {path}")
    records = [record_from_row(row, str(path)) for row in iter_jsonl(path)]
    if not records:
        raise DumpFormatError(f"{path} holds no papers")
    ids = [r.paper_id for r in records]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise DumpFormatError(f"{path}: duplicate paper ids, e.g. {dupes}")
    if join_papers:
        _join_sibling_papers(path, records)
    return records


def _join_sibling_papers(path: Path, records: list[PaperRecord]) -> None:
    sibling = path.with_name("papers.jsonl")
    if sibling == path or not sibling.is_file():
        return
    wanted = {r.paper_id: r for r in records if not r.text and not r.sections}
    if not wanted:
        return
    # Cheap check first: a 28 MB file of other papers is not read when its id prefix does not occur here.
    rows = iter_jsonl(sibling)
    first = next(rows, {})
    rows.close()
    prefix = _ID_PREFIX.match(str(first.get("paper_id", "")))
    if prefix and not any(pid.startswith(prefix.group(0)) for pid in wanted):
        return
    joined = 0
    for row in iter_jsonl(sibling):
        record = wanted.get(str(row.get("paper_id")))
        if record is not None:
            _attach_text(record, row)
            joined += 1
    log.info("joined full text for %d of %d papers from %s", joined, len(wanted), sibling)
