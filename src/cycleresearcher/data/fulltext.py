"""Full-text review data for the reward model: every shared source as one kind of row, camera-ready cues removed.

    rows = load_fulltext_rows(shared_data_dir())            # NeurIPS 2023-2025 full texts + ICLR 2017-18 abstracts
    rows = load_fulltext_rows(data, sources=["neurips2025"])
    path = ensure_default_reward_model()                    # train once from every source, cached under io.home()

A row: paper_id, source, venue, year, track, group ("NeurIPS-2023-main": ratings are compared within a group
only), title, abstract, text (cleaned by `reward.text.clean_paper_text`; empty for abstract-only sources),
abstract_only, ratings (one per reviewer, on the venue's scale), rating_max (6 or 10), mean_rating, decision
("Accept" / "Reject"), raw_words (word count before cleaning), removed (what the cleaning removed, by kind).

Sources (see shared/data/*/README.md): `neurips2023_2024` (7,634 papers, Nougat OCR), `neurips2025` (1,499,
Docling), `neurips2025_extra` (the 108 papers of reviews_real/papers.jsonl not in the 1,499), `iclr2017_2018`
(1,381 titles and abstracts, no full text).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from ..errors import InputError
from ..io import home, write_bytes_atomic
from ..reward.text import CLEAN_VERSION, clean_paper_text, compose_text

log = logging.getLogger(__name__)

SOURCES = ("neurips2023_2024", "neurips2025", "neurips2025_extra", "iclr2017_2018")
DATA_ENV = "CYCLERESEARCHER_DATA"
ROW_VERSION = 1  # bump when a row's fields change


def shared_data_dir(start: Optional[Path] = None) -> Optional[Path]:
    """$CYCLERESEARCHER_DATA, else shared/data or ../shared/data seen from the working directory or this
    checkout (the folder holding topics.txt); None when there is none."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    roots = [Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parents[3]]
    for root in roots:
        for base in [root, *root.parents][:4]:
            for candidate in (base / "shared" / "data", base.parent / "shared" / "data"):
                if (candidate / "topics.txt").exists():
                    return candidate
    return None


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{n} is not JSON: {exc.msg}") from exc


def _row(paper_id: str, source: str, venue: str, year: int, track: str, title: str, abstract: str, text: str,
         ratings: Sequence[float], rating_max: int, accepted: Optional[bool], clean: bool) -> dict[str, Any]:
    ratings = [float(r) for r in ratings if r is not None]
    raw = compose_text(title, abstract, text) if text else ""
    cleaned = clean_paper_text(raw) if (clean and raw) else None
    return {"paper_id": paper_id, "source": source, "venue": venue, "year": int(year), "track": track,
            "group": f"{venue}-{year}-{track}", "title": title, "abstract": abstract,
            "text": cleaned.text if cleaned else raw, "abstract_only": not text,
            "ratings": ratings, "rating_max": rating_max,
            "mean_rating": sum(ratings) / len(ratings) if ratings else None,
            "decision": None if accepted is None else ("Accept" if accepted else "Reject"),
            "raw_words": len(raw.split()), "removed": dict(cleaned.removed) if cleaned else {},
            "clean_version": CLEAN_VERSION if cleaned else None}


def _neurips2023_2024(data: Path, clean: bool) -> Iterator[dict[str, Any]]:
    for r in _jsonl(data / "neurips2023_2024_fulltext" / "papers.jsonl.gz"):
        track = "db" if "dataset" in str(r.get("track", "main")).lower() else "main"
        yield _row(r["paper_id"], "neurips2023_2024", "NeurIPS", r["year"], track, r.get("title") or "",
                   r.get("abstract") or "", r.get("text") or "", r.get("ratings") or [], 10,
                   str(r.get("decision", "")).lower() == "accept", clean)


def _neurips2025(data: Path, clean: bool) -> Iterator[dict[str, Any]]:
    for r in _jsonl(data / "neurips2025_fulltext" / "papers.jsonl.gz"):
        yield _row(r["paper_id"], "neurips2025", "NeurIPS", 2025, "main", r.get("title") or "",
                   r.get("abstract") or "", r.get("text") or "", [v.get("rating") for v in r.get("reviews", [])],
                   6, bool(r.get("accepted")), clean)


def _neurips2025_extra(data: Path, clean: bool, skip: set[str]) -> Iterator[dict[str, Any]]:
    folder = data / "reviews_real"
    reviews = {r["paper_id"]: r for r in _jsonl(folder / "reviews_neurips2025.jsonl")}
    for p in _jsonl(folder / "papers.jsonl"):
        r = reviews.get(p["paper_id"])
        if r is None or p["paper_id"] in skip:
            continue
        yield _row(p["paper_id"], "neurips2025_extra", "NeurIPS", 2025, "main", p.get("title") or "",
                   p.get("abstract") or "", p.get("text") or "", [v.get("rating") for v in r.get("reviews", [])],
                   6, str(r.get("decision", "")).lower() == "accept", clean)


def _iclr(data: Path, clean: bool) -> Iterator[dict[str, Any]]:
    for r in _jsonl(data / "reviews_real" / "reviews.jsonl"):
        yield _row(r["paper_id"], "iclr2017_2018", "ICLR", r["year"], "main", r.get("title") or "",
                   r.get("abstract") or "", "", [v.get("rating") for v in r.get("reviews", [])], 10,
                   str(r.get("decision", "")).lower() == "accept", clean)


def _cache_path(data: Path, sources: Sequence[str], clean: bool, min_ratings: int) -> Path:
    """io.home()/reward/rows/<key>.jsonl.gz, keyed by the input files (name, size, mtime), the sources asked
    for and the cleaner's version: cleaning 10k papers takes minutes, reading them back seconds."""
    files = sorted(p for p in data.rglob("*.jsonl*") if p.is_file())
    stamp = [(str(p.relative_to(data)), p.stat().st_size, int(p.stat().st_mtime)) for p in files]
    key = json.dumps([stamp, sorted(sources), clean, min_ratings, CLEAN_VERSION, ROW_VERSION])
    return home() / "reward" / "rows" / (hashlib.sha256(key.encode()).hexdigest()[:20] + ".jsonl.gz")


def load_fulltext_rows(data: Optional[Path] = None, sources: Sequence[str] = SOURCES, clean: bool = True,
                       min_ratings: int = 1, cache: bool = True) -> list[dict[str, Any]]:
    """Rows of the named shared sources (default: all), each paper once, with `min_ratings` ratings or more.
    Cleaned rows are cached under io.home() (see `_cache_path`) unless cache=False."""
    data = Path(data) if data is not None else shared_data_dir()
    if data is None or not data.is_dir():
        raise InputError("the shared data folder was not found; pass --data DIR or set CYCLERESEARCHER_DATA")
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise InputError(f"unknown sources {sorted(unknown)}; known: {', '.join(SOURCES)}")
    path = _cache_path(data, sources, clean, min_ratings) if cache and clean else None
    if path is not None and path.exists():
        try:
            return list(_jsonl(path))
        except (InputError, OSError, EOFError) as exc:
            log.warning("ignoring the unreadable row cache %s: %s", path, exc)
    rows = _load(data, sources, clean, min_ratings)
    if path is not None:
        payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        write_bytes_atomic(path, gzip.compress(payload, compresslevel=3))
    return rows


def _load(data: Path, sources: Sequence[str], clean: bool, min_ratings: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name in SOURCES:
        if name not in sources:
            continue
        if name == "neurips2023_2024":
            it = _neurips2023_2024(data, clean)
        elif name == "neurips2025":
            it = _neurips2025(data, clean)
        elif name == "neurips2025_extra":
            it = _neurips2025_extra(data, clean, seen | _ids_2025(data))
        else:
            it = _iclr(data, clean)
        n = 0
        for row in it:
            if row["paper_id"] in seen or len(row["ratings"]) < min_ratings:
                continue
            seen.add(row["paper_id"])
            rows.append(row)
            n += 1
        log.info("%s: %d papers", name, n)
    return rows


def _ids_2025(data: Path) -> set[str]:
    return {r["paper_id"] for r in _jsonl(data / "neurips2025_fulltext" / "papers.jsonl.gz")}
