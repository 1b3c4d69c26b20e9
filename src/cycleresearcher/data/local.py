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
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterator, Optional

from ..schema import Section
from .normalize import (PaperRecord, clean_meta_review, normalize_decision, rating_scale_for, repair_flattened,
                        review_from_text, scale_max, split_list)

log = logging.getLogger(__name__)

_ID_PREFIX = re.compile(r"^([a-z]+)(\d{4})_")
_VENUE_NAMES = {"iclr": "ICLR", "neurips": "NeurIPS", "nips": "NeurIPS", "icml": "ICML", "acl": "ACL"}


class DumpFormatError(ValueError):
    """A local file is not a dump this module can read."""


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a .jsonl or .jsonl.gz file; a bad line is an error that names the file and line."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DumpFormatError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DumpFormatError(f"{path}:{number}: expected a JSON object per line")
            yield row


def venue_year_from_id(paper_id: str) -> tuple[str, Optional[int]]:
    """("ICLR", 2017) from "iclr2017_HJWHIKqgl"; ("", None) when the id has no such prefix."""
    m = _ID_PREFIX.match(paper_id)
    if not m:
        return "", None
    return _VENUE_NAMES.get(m.group(1), m.group(1).upper()), int(m.group(2))


def record_from_row(row: dict[str, Any], source: str = "") -> PaperRecord:
    """One dump row (any of the three shapes) as a PaperRecord."""
    paper_id = str(row.get("paper_id") or row.get("id") or "").strip()
    if not paper_id:
        raise DumpFormatError(f"{source}: a row has no paper_id")
    id_venue, id_year = venue_year_from_id(paper_id)
    venue = str(row.get("venue") or id_venue)
    year = int(row["year"]) if row.get("year") not in (None, "") else id_year
    raw_decision = row.get("decision_raw") or row.get("decision")
    if raw_decision is None and "accepted" in row:
        raw_decision = bool(row["accepted"])
    decision = normalize_decision(row.get("decision") if row.get("decision") is not None else raw_decision)
    scale = row.get("rating_scale") or rating_scale_for(venue, year)
    record = PaperRecord(
        paper_id=paper_id, title=str(row.get("title") or "").strip(), abstract=str(row.get("abstract") or "").strip(),
        keywords=split_list(row.get("keywords")), authors=split_list(row.get("authors")),
        venue=venue, year=year, decision=decision,
        decision_raw="" if raw_decision is None else str(raw_decision),
        rating_scale=scale, source=str(row.get("source") or source),
    )
    flattened = bool(row.get("text_whitespace_flattened"))
    for index, raw in enumerate(row.get("reviews") or []):
        record.reviews.append(_review(raw, flattened, scale_max(scale), record.problems, index))
        record.review_extras.append({k: raw[k] for k in ("review_title", "reviewer", "originality", "date",
                                                        "text_truncated", "clarity", "impact") if k in raw})
    record.meta_review = clean_meta_review(row.get("meta_review"), bool(row.get("meta_review_whitespace_flattened")))
    _attach_text(record, row)
    return record


def _review(raw: dict[str, Any], flattened: bool, high: int, problems: list[str], index: int):
    if not isinstance(raw, dict):
        raise DumpFormatError(f"review {index} is not an object")
    text = str(raw.get("text") or raw.get("comments") or "")
    if flattened:
        text = repair_flattened(text)
    local: list[str] = []
    # NeurIPS 2025 sub-scores (1-4): clarity is the form's presentation, impact its significance (contribution);
    # "quality" (soundness) was not scraped and originality has no field on the ICLR form (kept in extras).
    review = review_from_text(text, raw.get("rating"), raw.get("confidence"),
                              presentation=raw.get("clarity"), contribution=raw.get("impact"),
                              rating_high=high, problems=local)
    problems.extend(f"review {index + 1}: {p}" for p in local)
    return review


def _attach_text(record: PaperRecord, row: dict[str, Any]) -> None:
    if row.get("text"):
        record.text = str(row["text"])
        record.text_format = "markdown"
    sections = row.get("sections")
    if sections:
        record.sections = [Section(heading=str(s.get("heading") or ""), text=str(s.get("text") or ""))
                           for s in sections if isinstance(s, dict)]
        if not record.text:
            record.text = "\n\n".join(f"## {s.heading}\n\n{s.text}" if s.heading else s.text
                                      for s in record.sections)
            record.text_format = "sections"


def load_dump(path: Path, join_papers: bool = True) -> list[PaperRecord]:
    """Every paper of a local JSON-lines dump, with a sibling `papers.jsonl` joined in when its ids match."""
    path = Path(path)
    if not path.is_file():
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
    first = next(iter_jsonl(sibling), {})
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
