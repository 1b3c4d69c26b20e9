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

from . import limits
from .errors import InputError
from .schema import Reference

log = logging.getLogger(__name__)

_DOCUMENT_SUFFIXES = {".tex", ".pdf", ".md", ".markdown", ".txt", ".gz", ".tgz", ".zip"}


def load_references(path: Path) -> list[Reference]:
    """References from a BibTeX file, a JSONL file (title, abstract, optional key/authors/year/venue/bibtex) or
    a folder of papers (.tex/.pdf/.md/.txt/archives; also any .bib and .jsonl files in it).

    A folder is read without following symlinks that leave it, and a paper in it that cannot be read is skipped
    with a warning. References whose text holds instructions for a model (the researcher reads every abstract
    as part of its prompt) are logged as warnings; `reference_flags` returns them."""
    refs = _unique(_load(Path(path)))
    for key, flag in reference_flags(refs):
        log.warning("reference %s: %s", key, flag)
    return refs


def reference_flags(refs: list[Reference]) -> list[tuple[str, str]]:
    """(reference key, flag) for each prompt injection found in the references' titles, abstracts and BibTeX."""
    from .injection import reference_injections

    return [(key, str(flag)) for key, flag in reference_injections(refs)]


def _load(path: Path) -> list[Reference]:
    if not path.exists():
        raise FileNotFoundError(f"references not found: {path}")
    if path.is_dir():
        refs: list[Reference] = []
        for child in limits.confined_files(path):
            if child.parent != path:
                continue  # the folder's own files, as before; sub-folders are not corpora
            suffix = child.suffix.lower()
            if suffix in (".bib", ".jsonl"):
                refs.extend(_load(child))
            elif suffix in _DOCUMENT_SUFFIXES:
                try:
                    refs.append(_from_document(child))
                except InputError as exc:
                    log.warning("skipped %s: %s", child.name, exc)
        return refs
    limits.check_regular_file(path, "references file")
    if path.suffix == ".bib":
        from .formats.bibtex import load_bibtex

        refs, problems = load_bibtex(path)
        for p in problems:
            log.warning("%s", p)
        return refs
    if path.suffix == ".jsonl":
        return _from_jsonl(path)
    if path.suffix in _DOCUMENT_SUFFIXES:
        return [_from_document(path)]
    raise InputError(f"{path}: references must be a .bib file, a .jsonl file or a folder of papers")


def _text(row: dict, name: str) -> str:
    value = row.get(name)
    return value if isinstance(value, str) else str(value) if isinstance(value, (int, float)) and value else ""


def _from_jsonl(path: Path) -> list[Reference]:
    text, _ = limits.read_text(path, what="references JSONL")
    refs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        row = limits.loads_json(line, f"{path}:{n}")
        if not isinstance(row, dict):
            raise InputError(f"{path}:{n}: expected a JSON object per line")
        title = _text(row, "title").strip()
        if not title:
            raise InputError(f"{path}: row {n} has no 'title' text")
        authors = row.get("authors") or []
        if isinstance(authors, str):
            authors = [a.strip() for a in authors.split(" and ") if a.strip()]
        elif isinstance(authors, list):
            authors = [a for a in authors if isinstance(a, str)]
        else:
            authors = []
        key = _text(row, "key") or _text(row, "id") or _text(row, "paper_id") or _key_from_title(title, n)
        refs.append(Reference(key=key, title=title, abstract=_text(row, "abstract"), authors=authors,
                              year=_text(row, "year"), venue=_text(row, "venue"), bibtex=_text(row, "bibtex")))
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
