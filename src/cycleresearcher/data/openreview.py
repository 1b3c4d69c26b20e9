"""OpenReview venues as PaperRecords: submissions with their official reviews, meta-review and decision.

    from cycleresearcher.data.openreview import load_venue
    records = load_venue("ICLR.cc/2024/Conference", cache_dir="cache/openreview")    # API v2
    records = load_venue("ICLR.cc/2018/Conference", cache_dir="cache/openreview")    # API v1

API v2 serves ICLR 2024+ and NeurIPS 2023+, where every content value is wrapped as {"value": ...} and replies
carry `invitations` such as ICLR.cc/2024/Conference/Submission123/-/Official_Review. API v1 serves ICLR 2018-2023
with plain values and one `invitation` such as ICLR.cc/2019/Conference/-/Paper123/Official_Review. Both are
read through `openreview-py` (the `data` extra, imported lazily) with credentials from OPENREVIEW_USERNAME /
OPENREVIEW_PASSWORD (guest access works for public venues).

Each raw response is cached as JSON per venue and invitation (written atomically); a later call reads only the
cache and makes no network call, so datasets can be rebuilt offline. Withdrawn and desk-rejected submissions
are skipped unless `include_withdrawn`; PDFs are downloaded only when `fetch_pdfs` is set.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import InputError
from ..schema import Review
from .cache import CacheMissError, RateLimiter, read_json, slug, write_bytes_atomic, write_json_atomic
from .normalize import (PaperRecord, clean_meta_review, neutralise_review_lines, normalize_decision,
                        rating_scale_for, review_from_text, scale_max, split_list, unwrap)

log = logging.getLogger(__name__)

API_V1_URL = "https://api.openreview.net"
API_V2_URL = "https://api2.openreview.net"
OPENREVIEW_DELAY_S = 1.0  # seconds between top-level API calls (openreview-py pages inside each call)

# Content keys of the review forms over the years (ICLR 2018-2025, NeurIPS 2021-2025), in order of preference.
RATING_KEYS = ("rating", "recommendation", "overall_rating", "overall_recommendation")
SOUNDNESS_KEYS = ("soundness", "correctness", "quality", "technical_quality")
PRESENTATION_KEYS = ("presentation", "clarity")
CONTRIBUTION_KEYS = ("contribution", "significance", "technical_novelty_and_significance")
FREE_TEXT_KEYS = ("review", "main_review", "strength_and_weaknesses", "strengths_and_weaknesses")
META_KEYS = ("metareview", "meta_review", "metareview:_summary,_strengths_and_weaknesses", "summary")
_YEAR = re.compile(r"/(\d{4})(?:/|$)")


class OpenReviewError(InputError):
    """OpenReview returned something we cannot use, or openreview-py is missing (a clean CLI error, no traceback)."""


@dataclass(frozen=True)
class Query:
    """One cached API call: all notes of an invitation, with their replies."""

    invitation: str
    details: str  # "replies" (v2) | "directReplies" (v1)


def venue_year(venue_id: str) -> Optional[int]:
    m = _YEAR.search(venue_id)
    return int(m.group(1)) if m else None


def venue_name(venue_id: str) -> str:
    """"ICLR" from "ICLR.cc/2024/Conference", "NeurIPS" from "NeurIPS.cc/2023/Conference"."""
    return venue_id.split("/")[0].removesuffix(".cc")


def api_version_for(venue_id: str) -> int:
    """1 for venues that live on API v1 (ICLR up to 2023, NeurIPS up to 2022), else 2."""
    year = venue_year(venue_id) or 9999
    name = venue_name(venue_id).lower()
    if (name == "iclr" and year <= 2023) or (name == "neurips" and year <= 2022):
        return 1
    return 2


def queries_for(venue_id: str, api_version: int, include_withdrawn: bool = False) -> list[Query]:
    """The invitations to fetch. v2 keeps withdrawn papers in /-/Submission (marked by venueid); v1 moves them."""
    if api_version == 2:
        return [Query(f"{venue_id}/-/Submission", "replies")]
    queries = [Query(f"{venue_id}/-/Blind_Submission", "directReplies")]
    if include_withdrawn:
        queries += [Query(f"{venue_id}/-/Withdrawn_Submission", "directReplies"),
                    Query(f"{venue_id}/-/Desk_Rejected_Submission", "directReplies")]
    return queries


def make_client(api_version: int) -> Any:
    """An openreview-py client for API v1 or v2; credentials from OPENREVIEW_USERNAME / OPENREVIEW_PASSWORD."""
    try:
        import openreview  # lazy: the `data` extra
    except ImportError as exc:
        raise OpenReviewError("OpenReview needs openreview-py: pip install 'cycleresearcher[data]'") from exc
    username = os.environ.get("OPENREVIEW_USERNAME") or None
    password = os.environ.get("OPENREVIEW_PASSWORD") or None
    if api_version == 2:
        return openreview.api.OpenReviewClient(baseurl=API_V2_URL, username=username, password=password)
    return openreview.Client(baseurl=API_V1_URL, username=username, password=password)


def note_to_dict(note: Any) -> dict[str, Any]:
    """A note as JSON: dicts pass through; openreview-py Notes via to_json() plus their `details` (replies)."""
    if isinstance(note, dict):
        return note
    if not hasattr(note, "to_json"):
        raise OpenReviewError(f"cannot read a note of type {type(note).__name__}")
    data = dict(note.to_json())
    details = getattr(note, "details", None)
    if details and "details" not in data:
        data["details"] = details
    return data


# ---- fetching, through the cache --------------------------------------------------------------------------

def cache_path(cache_dir: Path, venue_id: str, query: Query) -> Path:
    return Path(cache_dir).expanduser() / slug(venue_id) / f"{slug(query.invitation)}.json"


def fetch_notes(venue_id: str, cache_dir: Path, client: Any = None, api_version: Optional[int] = None,
                include_withdrawn: bool = False, limiter: Optional[RateLimiter] = None, refresh: bool = False,
                offline: bool = False) -> tuple[int, list[dict[str, Any]]]:
    """(api_version, raw submission notes with replies), from the cache when present, else from the API.

    The client is built only when something is missing from the cache, so a cached rebuild touches no socket.
    """
    version = api_version or api_version_for(venue_id)
    limiter = limiter or RateLimiter(OPENREVIEW_DELAY_S)
    notes: list[dict[str, Any]] = []
    for query in queries_for(venue_id, version, include_withdrawn):
        path = cache_path(cache_dir, venue_id, query)
        if path.is_file() and not refresh:
            notes.extend(read_json(path)["notes"])
            continue
        if offline:
            raise CacheMissError(f"{query.invitation} is not in the cache {path.parent} (offline)")
        if client is None:
            client = make_client(version)
        limiter.wait()
        log.info("OpenReview API v%d: %s", version, query.invitation)
        fetched = [note_to_dict(n) for n in client.get_all_notes(invitation=query.invitation, details=query.details)]
        write_json_atomic(path, {"venue_id": venue_id, "api_version": version, "invitation": query.invitation,
                                 "details": query.details, "count": len(fetched), "notes": fetched,
                                 "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        notes.extend(fetched)
    return version, notes


def load_venue(venue_id: str, cache_dir: Path, client: Any = None, api_version: Optional[int] = None,
               include_withdrawn: bool = False, fetch_pdfs: bool = False, limiter: Optional[RateLimiter] = None,
               refresh: bool = False, offline: bool = False) -> list[PaperRecord]:
    """Every (non-withdrawn) submission of a venue as a PaperRecord, via the on-disk cache."""
    venue_id = venue_id.strip().strip("/")
    if not venue_id:
        raise ValueError("an OpenReview venue id is needed, e.g. ICLR.cc/2024/Conference")
    limiter = limiter or RateLimiter(OPENREVIEW_DELAY_S)
    version, notes = fetch_notes(venue_id, cache_dir, client, api_version, include_withdrawn, limiter, refresh,
                                 offline)
    records, skipped = [], 0
    for note in notes:
        record = record_from_note(note, venue_id, version, include_withdrawn)
        if record is None:
            skipped += 1
            continue
        records.append(record)
    log.info("%s: %d papers, %d withdrawn or desk-rejected skipped", venue_id, len(records), skipped)
    if fetch_pdfs:
        for record in records:
            record.pdf_path = str(fetch_pdf(record.paper_id.split("_", 1)[-1], venue_id, cache_dir, client,
                                            version, limiter, offline))
    return records


def fetch_pdf(note_id: str, venue_id: str, cache_dir: Path, client: Any = None, api_version: int = 2,
              limiter: Optional[RateLimiter] = None, offline: bool = False) -> Path:
    """A submission's PDF, from the cache or downloaded once."""
    path = Path(cache_dir).expanduser() / slug(venue_id) / "pdfs" / f"{slug(note_id)}.pdf"
    if path.is_file():
        return path
    if offline:
        raise CacheMissError(f"PDF of {note_id} is not in the cache (offline)")
    client = client or make_client(api_version)
    (limiter or RateLimiter(OPENREVIEW_DELAY_S)).wait()
    data = client.get_pdf(note_id)
    if not isinstance(data, (bytes, bytearray)) or not bytes(data).startswith(b"%PDF"):
        raise OpenReviewError(f"OpenReview returned no PDF for {note_id}")
    return write_bytes_atomic(path, bytes(data))


# ---- normalising notes ------------------------------------------------------------------------------------

def _content(note: dict[str, Any]) -> dict[str, Any]:
    return {k: unwrap(v) for k, v in (note.get("content") or {}).items()}


def _kind(reply: dict[str, Any]) -> str:
    """The reply's form: Official_Review, Meta_Review, Decision, Withdrawal, ... (last part of its invitation)."""
    names = reply.get("invitations") or [reply.get("invitation") or ""]
    kinds = [str(n).rsplit("/", 1)[-1] for n in names if n]
    for kind in kinds:
        if kind in ("Official_Review", "Review", "Meta_Review", "Decision", "Acceptance_Decision", "Withdrawal",
                    "Desk_Rejection", "Withdraw", "Desk_Reject"):
            return kind
    return kinds[0] if kinds else ""


def _first(content: dict[str, Any], keys: tuple[str, ...], numeric: bool = False) -> Any:
    for key in keys:
        value = content.get(key)
        if value in (None, ""):
            continue
        # "clarity" is a 1-4 score on the NeurIPS 2025 form but free text on ICLR 2023's; take scores only
        if numeric and isinstance(value, str) and not re.match(r"\s*\d", value):
            continue
        return value
    return None


def _is_withdrawn(note: dict[str, Any], content: dict[str, Any], replies: list[dict[str, Any]]) -> bool:
    invitations = note.get("invitations") or [note.get("invitation") or ""]
    marks = [str(content.get("venueid") or ""), str(content.get("venue") or "")] + [str(i) for i in invitations]
    text = " ".join(marks).lower()
    if "withdrawn" in text or "desk_rejected" in text or "desk rejected" in text:
        return True
    return any(_kind(r) in ("Withdrawal", "Desk_Rejection", "Withdraw", "Desk_Reject") for r in replies)


def record_from_note(note: dict[str, Any], venue_id: str, api_version: int,
                     include_withdrawn: bool = False) -> Optional[PaperRecord]:
    """A submission note (with its replies in details) as a PaperRecord; None for a skipped withdrawn paper."""
    content = _content(note)
    details = note.get("details") or {}
    replies = [r for r in (details.get("replies") or details.get("directReplies") or []) if isinstance(r, dict)]
    withdrawn = _is_withdrawn(note, content, replies)
    if withdrawn and not include_withdrawn:
        return None
    note_id = str(note.get("id") or note.get("forum") or "")
    if not note_id:
        raise OpenReviewError(f"{venue_id}: a submission note has no id")
    name, year = venue_name(venue_id), venue_year(venue_id)
    scale = rating_scale_for(name, year)
    record = PaperRecord(
        paper_id=f"{slug(name.lower())}{year or ''}_{note_id}", title=str(content.get("title") or "").strip(),
        abstract=str(content.get("abstract") or "").strip(), keywords=split_list(content.get("keywords")),
        authors=[a for a in split_list(content.get("authors")) if a.lower() != "anonymous"],
        venue=name, year=year, rating_scale=scale, source=f"openreview api v{api_version}: {venue_id} forum {note_id}",
    )
    decision_raw, meta_recommendation, decision_comment = None, None, ""
    # replies arrive newest first in v1; keep reviews in creation order
    for reply in sorted(replies, key=lambda r: (r.get("cdate") or r.get("tcdate") or 0)):
        kind, rc = _kind(reply), _content(reply)
        if kind in ("Official_Review", "Review"):
            review, extras = review_from_content(rc, scale_max(scale), record.problems)
            if review is not None:
                record.reviews.append(review)
                record.review_extras.append(extras)
        elif kind == "Meta_Review":
            text = _first(rc, META_KEYS)
            record.meta_review = clean_meta_review(str(text or ""))
            meta_recommendation = rc.get("recommendation") or rc.get("decision")
        elif kind in ("Decision", "Acceptance_Decision"):
            decision_raw = rc.get("decision") or rc.get("recommendation")
            decision_comment = str(rc.get("comment") or "")
    if not record.meta_review and decision_comment:  # ICLR 2018 wrote the meta-review as the decision's comment
        record.meta_review = clean_meta_review(decision_comment)
    raw = decision_raw or meta_recommendation
    if raw is None and api_version == 2 and content.get("venueid") != f"{venue_id}/Submission":
        raw = content.get("venue")  # "ICLR 2024 poster" / "Submitted to ICLR 2024"
    record.decision_raw = "Withdrawn" if withdrawn else str(raw or "")
    record.decision = None if withdrawn else normalize_decision(raw)
    return record


def review_from_content(content: dict[str, Any], rating_high: int,
                        problems: list[str]) -> tuple[Optional[Review], dict]:
    """One official review's content (any year's form) as a Review, plus the raw scores it came with."""
    free_text = "\n\n".join(str(content[k]) for k in FREE_TEXT_KEYS if content.get(k))
    fields = {}
    for name, keys in (("summary", ("summary", "summary_of_the_paper")), ("strengths", ("strengths",)),
                       ("weaknesses", ("weaknesses",)), ("questions", ("questions",))):
        value = _first(content, keys)
        if value:
            fields[name] = str(value)
    extra_weak = [f"Limitations: {content['limitations']}" if content.get("limitations") else "",
                  str(content.get("clarity,_quality,_novelty_and_reproducibility") or "")]
    if any(extra_weak) and "weaknesses" in fields:
        fields["weaknesses"] = "\n\n".join([fields["weaknesses"]] + [w for w in extra_weak if w])
    elif any(extra_weak):
        free_text = "\n\n".join([free_text] + [w for w in extra_weak if w]).strip()
    if content.get("summary_of_the_review") and "summary" in fields:
        fields["summary"] += "\n\n" + str(content["summary_of_the_review"])
    elif content.get("summary_of_the_review"):
        free_text = "\n\n".join([free_text, str(content["summary_of_the_review"])]).strip()
    rating = _first(content, RATING_KEYS)
    if not free_text and not fields and rating is None:
        return None, {}
    local: list[str] = []
    review = review_from_text(free_text, rating, content.get("confidence"),
                              soundness=_first(content, SOUNDNESS_KEYS, numeric=True),
                              presentation=_first(content, PRESENTATION_KEYS, numeric=True),
                              contribution=_first(content, CONTRIBUTION_KEYS, numeric=True),
                              rating_high=rating_high, problems=local, **fields)
    flag = content.get("flag_for_ethics_review")
    if flag:
        flag_text = "; ".join(str(f) for f in flag) if isinstance(flag, list) else str(flag)
        no_flag = flag_text.lower().startswith("no")
        review.ethics_flag = "No ethics review needed." if no_flag else neutralise_review_lines(flag_text)
    problems.extend(local)
    extras = {k: content[k] for k in ("rating", "recommendation", "confidence", "originality", "title")
              if content.get(k) not in (None, "")}
    return review, extras
