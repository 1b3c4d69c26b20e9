"""Source specs -> PaperRecords.

A spec is one of these, several joined with `+`:
- a path to a local dump: `reviews.jsonl` of the shared-data shape, NeurIPS `papers.jsonl(.gz)`, a PeerRead folder;
- `openreview:VENUE_ID[@CACHE_DIR]`, e.g. `openreview:ICLR.cc/2024/Conference@cache/or`;
- `arxiv:ID,ID,...[@CACHE_DIR]`, e.g. `arxiv:2411.00816,1706.03762`.
Network sources read their on-disk cache first; `offline=True` makes a cache miss an error instead of a fetch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from ..errors import InputError
from .cache import default_cache_dir
from .normalize import PaperRecord

log = logging.getLogger(__name__)

# no square brackets: the CLI prints errors through rich, which would read "[@CACHE]" as markup
SPEC_HELP = ("a path (reviews.jsonl, papers.jsonl.gz, a PeerRead folder), openreview:VENUE_ID (optionally "
             "@CACHE_DIR) or arxiv:ID,ID (optionally @CACHE_DIR), joined with +")


class SourceSpecError(InputError):
    """A source spec that names nothing we can read."""


def split_spec(spec: str) -> list[str]:
    parts = [p.strip() for p in (spec or "").split("+") if p.strip()]
    if not parts:
        raise SourceSpecError(f"empty source spec; use {SPEC_HELP}")
    return parts


def load_one(part: str, offline: bool = False) -> list[PaperRecord]:
    """The records of one spec part."""
    if part.startswith("openreview:"):
        from .openreview import load_venue

        venue, _, cache = part[len("openreview:"):].partition("@")
        return load_venue(venue, Path(cache) if cache else default_cache_dir("openreview"), offline=offline)
    if part.startswith("arxiv:"):
        from .arxiv import load_arxiv_papers

        ids_text, _, cache = part[len("arxiv:"):].partition("@")
        ids = [i.strip() for i in ids_text.split(",") if i.strip()]
        if not ids:
            raise SourceSpecError(f"{part!r}: no arXiv ids (use arxiv:2411.00816,1706.03762)")
        return load_arxiv_papers(ids, Path(cache) if cache else default_cache_dir("arxiv"), offline=offline)
    path = Path(part).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"source {part!r}: no such file or folder; a source is {SPEC_HELP}")
    if path.is_dir():
        from .peerread import load_peerread

        return load_peerread(path)
    from .local import load_dump

    return load_dump(path)


def load_records(spec: str, offline: bool = False, limit: Optional[int] = None) -> list[PaperRecord]:
    """All records of a spec, in source order, each paper once (the first source that has it wins)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    records: list[PaperRecord] = []
    seen: set[str] = set()
    duplicates = 0
    for part in split_spec(spec):
        for record in load_one(part, offline):
            if record.paper_id in seen:
                duplicates += 1
                continue
            seen.add(record.paper_id)
            records.append(record)
    if duplicates:
        log.warning("%s: %d papers appeared in more than one source; kept the first", spec, duplicates)
    return records[:limit] if limit else records
