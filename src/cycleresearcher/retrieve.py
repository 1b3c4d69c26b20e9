"""References for the researcher: read them from a .bib file, a folder of papers or a JSONL of titles and
abstracts, rank them against the topic with sentence embeddings, and write the literature review.

    refs = load_references(Path("../shared/data/sample.bib"))
    top = rank_references("robust graph neural networks", refs, k=8)
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Optional

from .schema import Reference

log = logging.getLogger(__name__)

_DOCUMENT_SUFFIXES = {".tex", ".pdf", ".md", ".markdown", ".txt", ".gz", ".tgz", ".zip"}


def load_references(path: Path) -> list[Reference]:
    """References from a BibTeX file, a JSONL file (title, abstract, optional key/authors/year/venue/bibtex) or
    a folder of papers (.tex/.pdf/.md/.txt/archives; also any .bib and .jsonl files in it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"references not found: {path}")
    if path.is_dir():
        refs: list[Reference] = []
        for child in sorted(path.iterdir()):
            if child.suffix in (".bib", ".jsonl") or child.suffix in _DOCUMENT_SUFFIXES:
                refs.extend(load_references(child) if child.suffix in (".bib", ".jsonl") else [_from_document(child)])
        return _unique(refs)
    if path.suffix == ".bib":
        from .formats.bibtex import load_bibtex

        refs, problems = load_bibtex(path)
        for p in problems:
            log.warning("%s: %s", path.name, p)
        return _unique(refs)
    if path.suffix == ".jsonl":
        return _unique(_from_jsonl(path))
    if path.suffix in _DOCUMENT_SUFFIXES:
        return [_from_document(path)]
    raise ValueError(f"{path}: references must be a .bib file, a .jsonl file or a folder of papers")


def _from_jsonl(path: Path) -> list[Reference]:
    from .data.local import iter_jsonl

    refs = []
    for n, row in enumerate(iter_jsonl(path), 1):
        if not row.get("title"):
            raise ValueError(f"{path}: row {n} has no 'title'")
        authors = row.get("authors") or []
        refs.append(Reference(
            key=str(row.get("key") or row.get("id") or row.get("paper_id") or _key_from_title(row["title"], n)),
            title=str(row["title"]), abstract=str(row.get("abstract") or ""),
            authors=authors if isinstance(authors, list) else [a.strip() for a in str(authors).split(" and ")],
            year=str(row.get("year") or ""), venue=str(row.get("venue") or ""), bibtex=str(row.get("bibtex") or "")))
    return refs


def _from_document(path: Path) -> Reference:
    from .formats.document import load_document

    doc = load_document(path)
    abstract = doc.abstract or " ".join(doc.text.split()[:200])
    return Reference(key=_key_from_title(doc.title or path.stem, 0), title=doc.title or path.stem,
                     abstract=abstract)


def _key_from_title(title: str, n: int) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())[:3]
    return "_".join(words) or f"ref{n}"


def _unique(refs: list[Reference]) -> list[Reference]:
    seen: set[str] = set()
    out = []
    for ref in refs:
        key = ref.key
        i = 2
        while key in seen:
            key = f"{ref.key}_{i}"
            i += 1
        seen.add(key)
        ref.key = key
        out.append(ref)
    return out


def rank_references(topic: str, refs: list[Reference], k: int = 8,
                    cache_dir: Optional[Path] = None) -> list[Reference]:
    """The k references closest to the topic by cosine similarity of MiniLM embeddings (title + abstract)."""
    if not refs or k <= 0:
        return []
    if len(refs) <= k or not topic.strip():
        return refs[:k]
    from .embed import embed_texts

    vectors = embed_texts([topic] + [f"{r.title}. {r.abstract}" for r in refs], cache_dir=cache_dir)
    similarity = vectors[1:] @ vectors[0]  # rows are L2-normalised
    order = sorted(range(len(refs)), key=lambda i: (-float(similarity[i]), i))
    return [refs[i] for i in order[:k]]


def literature_review(topic: str, refs: list[Reference], sentences: int = 1) -> str:
    """A short, deterministic review of the ranked works: one line per work with the opening of its abstract."""
    lines = [f"Related work on {topic}:" if topic else "Related work:"]
    for ref in refs:
        first = " ".join(re.split(r"(?<=[.!?])\s+", " ".join(ref.abstract.split()))[:sentences]) if ref.abstract else ""
        year = f" ({ref.year})" if ref.year else ""
        lines.append(f"- [{ref.key}] {ref.title}{year}" + (f": {first}" if first else ""))
    return "\n".join(lines)
