"""PeerRead (Kang et al., NAACL 2018) as PaperRecords.

The PeerRead layout is `<venue>/<split>/reviews/<id>.json` (title, abstract, accepted, reviews with
RECOMMENDATION, REVIEWER_CONFIDENCE, comments, OTHER_KEYS, TITLE, IS_META_REVIEW) beside
`<venue>/<split>/parsed_pdfs/<id>.pdf.json` (science-parse output: metadata.sections, references, abstractText).
A folder with `reviews.jsonl` (the hand transcription in shared/data/peerread_iclr2017) is read too.

Entry rules (the same as the shared transcription): an official review is an entry with a RECOMMENDATION that
is not IS_META_REVIEW, once per reviewer and text (PeerRead lists some reviews twice); the meta-review is the
"ICLR committee final decision" entry; author replies, comments and question stubs are left out.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Optional

from .. import limits
from ..errors import InputError, LimitExceeded
from ..schema import Reference, Section
from .local import DumpFormatError, load_dump
from .normalize import (PaperRecord, clean_meta_review, normalize_decision, rating_scale_for, review_from_text,
                        scale_max, split_list)

log = logging.getLogger(__name__)

_VENUE_DIR = re.compile(r"^([a-z]+)_?(\d{4})$", re.I)
_FINAL_DECISION = re.compile(r"final decision|decision", re.I)


def _review_files(path: Path) -> list[Path]:
    """reviews/<id>.json files under `path`, never through a symlink that leaves it."""
    return [f for f in limits.confined_files(path, (".json",)) if f.parent.name == "reviews"]


def is_peerread_folder(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and (bool(_review_files(path)) or (path / "reviews.jsonl").is_file())


def load_peerread(path: Path) -> list[PaperRecord]:
    """All papers under a PeerRead folder (any depth: a venue, a split, or the whole data/ tree)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no such PeerRead folder: {path}")
    files = _review_files(path)
    if not files:
        if (path / "reviews.jsonl").is_file():
            return load_dump(path / "reviews.jsonl")
        raise DumpFormatError(f"{path} has neither reviews/*.json (PeerRead layout) nor reviews.jsonl")
    records = [read_peerread_paper(f) for f in files]
    ids = [r.paper_id for r in records]
    if len(set(ids)) != len(ids):
        raise DumpFormatError(f"{path}: the same paper id appears in two splits")
    return records


def _venue_of(review_file: Path) -> tuple[str, str, Optional[int]]:
    """(id prefix, venue, year) from the folder names, e.g. ("iclr2017", "ICLR", 2017) for iclr_2017/dev/reviews."""
    for part in reversed(review_file.parts[:-1]):
        m = _VENUE_DIR.match(part)
        if m:
            name = m.group(1).lower()
            venue = {"iclr": "ICLR", "nips": "NeurIPS", "neurips": "NeurIPS", "acl": "ACL", "conll": "CoNLL"}.get(
                name, name.upper())
            return f"{name}{m.group(2)}", venue, int(m.group(2))
    return "peerread", "", None


def read_peerread_paper(review_file: Path) -> PaperRecord:
    """One `reviews/<id>.json` with its `parsed_pdfs/<id>.pdf.json` when present."""
    review_file = Path(review_file)
    try:
        data = limits.read_json_file(review_file, "PeerRead review file")
    except LimitExceeded:
        raise
    except InputError as exc:
        raise DumpFormatError(str(exc)) from None
    if not isinstance(data, dict):
        raise DumpFormatError(f"{review_file}: expected a JSON object, got {type(data).__name__}")
    prefix, venue, year = _venue_of(review_file)
    pid = str(data.get("id") or review_file.stem) if not isinstance(data.get("id"), (list, dict)) else review_file.stem
    split = review_file.parent.parent.name
    scale = rating_scale_for(venue, year)
    record = PaperRecord(
        paper_id=f"{prefix}_{pid}", title=str(data.get("title") or "").strip(),
        abstract=str(data.get("abstract") or "").strip(), venue=venue, year=year,
        authors=split_list(data.get("authors")),
        decision=normalize_decision(data["accepted"]) if isinstance(data.get("accepted"), (bool, str)) else None,
        decision_raw=str(data.get("accepted", "")), rating_scale=scale,
        source=f"PeerRead {review_file.parent.parent.parent.name}/{split}/{pid}",
    )
    seen: set[tuple[str, str]] = set()
    entries = data.get("reviews") if isinstance(data.get("reviews"), list) else []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        comments = str(entry.get("comments") or "")
        if entry.get("IS_META_REVIEW"):
            continue
        if "RECOMMENDATION" not in entry:
            if _FINAL_DECISION.search(str(entry.get("TITLE", ""))) and not record.meta_review:
                record.meta_review = clean_meta_review(comments)
            continue
        key = (str(entry.get("OTHER_KEYS", "")), comments.strip())
        if key in seen:
            continue
        seen.add(key)
        record.reviews.append(review_from_text(comments, entry.get("RECOMMENDATION"),
                                               entry.get("REVIEWER_CONFIDENCE"), rating_high=scale_max(scale),
                                               problems=record.problems))
        signer = str(entry.get("OTHER_KEYS", "")).split()  # "ICLR 2017 conference AnonReviewer1"
        record.review_extras.append({"reviewer": signer[-1] if signer else "",
                                     "review_title": str(entry.get("TITLE", ""))})
    _attach_parsed_pdf(record, review_file.parent.parent / "parsed_pdfs" / f"{review_file.stem}.pdf.json")
    return record


def _attach_parsed_pdf(record: PaperRecord, pdf_json: Path) -> None:
    if not pdf_json.is_file():
        return
    try:
        data = limits.read_json_file(pdf_json, "PeerRead parsed PDF")
    except InputError as exc:
        record.problems.append(f"{pdf_json.name}: {exc}")
        return
    meta = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(meta, dict):
        record.problems.append(f"{pdf_json.name}: no metadata object")
        return

    def items(name: str) -> list[dict[str, Any]]:
        value = meta.get(name)
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    record.sections = [Section(heading=text(s.get("heading")), text=text(s.get("text"))) for s in items("sections")]
    if record.sections:
        record.text = "\n\n".join(f"## {s.heading}\n\n{s.text}" if s.heading else s.text for s in record.sections)
        record.text_format = "sections"
    if not record.abstract and text(meta.get("abstractText")):
        record.abstract = meta["abstractText"].strip()
    for n, ref in enumerate(items("references")):
        if not text(ref.get("title")):
            continue
        authors = split_list(ref.get("author"))
        year = str(ref.get("year")) if isinstance(ref.get("year"), (int, str)) else ""
        surname = re.sub(r"[^a-z]", "", authors[0].split()[-1].lower()) if authors and authors[0].split() else "ref"
        record.references.append(Reference(key=f"{surname}{year}_{n}", title=ref["title"].strip(),
                                           authors=authors, year=year, venue=text(ref.get("venue"))))
