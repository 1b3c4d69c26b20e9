"""arXiv papers from their LaTeX sources, as PaperRecords (the raw material of the Research dataset).

    from cycleresearcher.data.arxiv import load_arxiv_paper
    record = load_arxiv_paper("2411.00816", cache_dir="~/.cache/cycleresearcher/arxiv")

Metadata comes from the `arxiv` package (installed with the `data` extra, imported lazily); the source from
https://arxiv.org/e-print/ID, fetched at most once every `delay_s` seconds (arXiv asks for 3 s) and kept in the
cache, so a rebuild downloads nothing. Archives come from strangers: they are unpacked only through
`formats.archive.safe_extract`, which refuses path traversal, links out of the folder and size bombs.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from .. import limits
from ..errors import InputError
from ..schema import Reference
from .cache import CacheMissError, RateLimiter, read_json, slug, write_bytes_atomic, write_json_atomic
from .normalize import PaperRecord

log = logging.getLogger(__name__)

EPRINT_URL = "https://arxiv.org/e-print/{id}"
ARXIV_DELAY_S = 3.0  # arXiv's API terms: no more than one request every three seconds
USER_AGENT = "cycleresearcher-dataset-builder (+https://github.com/; research use)"
_NEW_ID = re.compile(r"^\d{4}\.\d{4,5}(v\d+)?$")
_OLD_ID = re.compile(r"^[a-z][a-z\-]*(\.[A-Z]{2})?/\d{7}(v\d+)?$")
_BIBITEM = re.compile(r"\\bibitem\s*(?:\[(?:[^\[\]]|\[[^\]]*\])*\])?\s*\{([^{}]*)\}")
_YEAR = re.compile(r"\b(19|20)\d{2}\b")

Fetcher = Callable[[str], bytes]


class ArxivSourceError(InputError):
    """An arXiv id is malformed, or its source is not LaTeX (PDF-only submissions) or cannot be read."""


@dataclass
class ArxivMeta:
    """What the arXiv API says about a paper."""

    arxiv_id: str
    title: str = ""
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    year: Optional[int] = None
    categories: list[str] = field(default_factory=list)


def normalize_arxiv_id(text: str) -> str:
    """"2411.00816" from "arXiv:2411.00816", "https://arxiv.org/abs/2411.00816" or ".../pdf/2411.00816.pdf"."""
    value = text.strip()
    value = re.sub(r"^(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|e-print|src)/", "", value)
    value = re.sub(r"^arxiv:", "", value, flags=re.I)
    value = re.sub(r"\.pdf$", "", value)
    if not (_NEW_ID.match(value) or _OLD_ID.match(value)):
        raise ArxivSourceError(f"not an arXiv id: {text!r} (expected e.g. 2411.00816 or cs/0112017)")
    return value


def source_url(arxiv_id: str) -> str:
    return EPRINT_URL.format(id=normalize_arxiv_id(arxiv_id))


def _default_searcher(ids: list[str]) -> Iterable[Any]:
    try:
        import arxiv  # lazy: the `data` extra
    except ImportError as exc:
        raise ImportError("arXiv look-ups need the `arxiv` package: pip install 'cycleresearcher[data]'") from exc
    client = arxiv.Client(page_size=100, delay_seconds=ARXIV_DELAY_S, num_retries=3)
    return client.results(arxiv.Search(id_list=ids, max_results=len(ids)))


def lookup(ids: list[str], searcher: Optional[Callable[[list[str]], Iterable[Any]]] = None) -> dict[str, ArxivMeta]:
    """Metadata for arXiv ids, keyed by the id as given (normalised). `searcher` returns arxiv.Result-like objects."""
    wanted = [normalize_arxiv_id(i) for i in ids]
    found: dict[str, ArxivMeta] = {}
    for result in (searcher or _default_searcher)(wanted):
        short = result.get_short_id() if hasattr(result, "get_short_id") else str(getattr(result, "entry_id", ""))
        short = short.rsplit("/abs/", 1)[-1]
        published = getattr(result, "published", None)
        meta = ArxivMeta(arxiv_id=short, title=" ".join(str(result.title).split()),
                         abstract=" ".join(str(getattr(result, "summary", "")).split()),
                         authors=[str(getattr(a, "name", a)) for a in getattr(result, "authors", [])],
                         year=getattr(published, "year", None),
                         categories=list(getattr(result, "categories", []) or []))
        for key in wanted:  # "2411.00816" matches a result "2411.00816v3"
            if short == key or short.split("v")[0] == key.split("v")[0]:
                found[key] = meta
    return found


def lookup_cached(ids: list[str], cache_dir: Path, searcher: Optional[Callable[[list[str]], Iterable[Any]]] = None,
                  offline: bool = False) -> dict[str, ArxivMeta]:
    """`lookup` through a JSON cache (cache_dir/meta/ID.json); offline, ids missing from the cache are left out."""
    folder = Path(cache_dir).expanduser() / "meta"
    wanted = [normalize_arxiv_id(i) for i in ids]
    found: dict[str, ArxivMeta] = {}
    for key in wanted:
        path = folder / f"{slug(key)}.json"
        if path.is_file():
            found[key] = ArxivMeta(**read_json(path))
    missing = [k for k in wanted if k not in found]
    if missing and not offline:
        for key, meta in lookup(missing, searcher).items():
            write_json_atomic(folder / f"{slug(key)}.json", meta.__dict__)
            found[key] = meta
    return found


def load_arxiv_papers(ids: list[str], cache_dir: Path, fetcher: Optional[Fetcher] = None,
                      searcher: Optional[Callable[[list[str]], Iterable[Any]]] = None,
                      offline: bool = False) -> list[PaperRecord]:
    """Several papers: metadata in one API call, then each source (cached, politely spaced).

    A paper without LaTeX source (PDF-only) or with a refused archive is skipped with a warning, so one bad
    e-print does not sink a batch; a malformed id or a network failure still raises.
    """
    from ..formats.archive import UnsafeArchiveError

    metas = lookup_cached(ids, cache_dir, searcher, offline)
    records = []
    for arxiv_id in ids:
        try:
            records.append(load_arxiv_paper(arxiv_id, cache_dir, fetcher, metas.get(normalize_arxiv_id(arxiv_id)),
                                            offline=offline))
        except (ArxivSourceError, UnsafeArchiveError) as exc:
            log.warning("skipping arXiv %s: %s", arxiv_id, exc)
    return records


def _urllib_fetcher(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310  (https URL built by us)
        return response.read()


_LIMITER = RateLimiter(ARXIV_DELAY_S)


def download_source(arxiv_id: str, cache_dir: Path, fetcher: Optional[Fetcher] = None,
                    limiter: Optional[RateLimiter] = None, offline: bool = False) -> Path:
    """The e-print archive of a paper, from the cache or downloaded once (politely) into it."""
    arxiv_id = normalize_arxiv_id(arxiv_id)
    target = Path(cache_dir).expanduser() / "sources" / f"{slug(arxiv_id)}.src"
    if target.is_file() and target.stat().st_size > 0:
        return target
    if offline:
        raise CacheMissError(f"arXiv source of {arxiv_id} is not in the cache {target.parent} (offline)")
    (limiter or _LIMITER).wait()
    url = source_url(arxiv_id)
    log.info("downloading %s", url)
    data = (fetcher or _urllib_fetcher)(url)
    if not data:
        raise ArxivSourceError(f"{url} returned no data")
    return write_bytes_atomic(target, data)


def extract_source(archive: Path, dest: Path) -> Path:
    """Unpack an e-print archive safely into `dest` (all or nothing: a refused archive leaves no folder)."""
    from ..formats.archive import safe_extract

    dest = Path(dest)
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        safe_extract(archive, tmp)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def load_arxiv_paper(arxiv_id: str, cache_dir: Path, fetcher: Optional[Fetcher] = None,
                     meta: Optional[ArxivMeta] = None, limiter: Optional[RateLimiter] = None,
                     offline: bool = False) -> PaperRecord:
    """Download (or read from the cache), unpack and read one arXiv paper's LaTeX source."""
    from ..formats.archive import find_main_tex
    from ..formats.latex import load_latex_project

    arxiv_id = normalize_arxiv_id(arxiv_id)
    cache_dir = Path(cache_dir).expanduser()
    archive = download_source(arxiv_id, cache_dir, fetcher, limiter, offline)
    folder = extract_source(archive, cache_dir / "extracted" / slug(arxiv_id))
    try:
        main = find_main_tex(folder)
    except FileNotFoundError as exc:
        kind = "a PDF-only submission" if (folder / "main.pdf").is_file() else "no LaTeX source"
        raise ArxivSourceError(f"arXiv {arxiv_id}: {kind} ({exc})") from exc
    doc = load_latex_project(main)
    references, ref_problems = bibliography(folder, main, doc.bibliography_files, doc.citations)
    meta = meta or ArxivMeta(arxiv_id=arxiv_id)
    return PaperRecord(
        paper_id=f"arxiv_{slug(arxiv_id)}", title=doc.title or meta.title, abstract=doc.abstract or meta.abstract,
        authors=list(meta.authors), keywords=list(meta.categories), venue="arXiv", year=meta.year,
        text=doc.text, text_format="latex", sections=list(doc.sections), references=references,
        latex=doc.source, source=f"arXiv {source_url(arxiv_id)}", problems=list(doc.problems) + ref_problems,
    )


def bibliography(folder: Path, main: Path, bib_names: list[str],
                 citations: list[str]) -> tuple[list[Reference], list[str]]:
    """References of a project: its .bib files (as \\bibliography names them, else any) or its .bbl.

    Keeps the cited entries, in citation order, when the citations can be matched; otherwise all entries.
    """
    from ..formats.bibtex import load_bibtex

    problems: list[str] = []
    bib_files = []
    for name in bib_names:
        candidate = (main.parent / (name if name.endswith(".bib") else f"{name}.bib")).resolve()
        if candidate.is_file() and candidate.is_relative_to(Path(folder).resolve()):
            bib_files.append(candidate)
        else:
            problems.append(f"bibliography file {name!r} not found in the source")
    if not bib_files and not bib_names:
        bib_files = limits.confined_files(Path(folder), (".bib",))
    entries: list[Reference] = []
    for path in bib_files:
        refs, bib_problems = load_bibtex(path)
        entries.extend(refs)
        problems.extend(f"{path.name}: {p}" for p in bib_problems)
    if not entries:
        for path in limits.confined_files(Path(folder), (".bbl",)):
            entries.extend(parse_bbl(limits.read_text(path, what=".bbl file")[0]))
    by_key = {ref.key: ref for ref in entries}
    cited = [by_key[key] for key in citations if key in by_key]
    return (cited if cited else entries), problems


def parse_bbl(text: str) -> list[Reference]:
    """Entries of a compiled bibliography (.bbl): key, authors line, title (the second \\newblock), year."""
    from ..formats.latex import latex_to_text

    refs = []
    marks = list(_BIBITEM.finditer(text))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = re.sub(r"\\end\{thebibliography\}.*", "", text[m.end():end], flags=re.S)
        blocks = [" ".join(latex_to_text(b).split()).strip(" .,") for b in re.split(r"\\newblock", body)]
        blocks = [b for b in blocks if b]
        year = _YEAR.search(body)
        refs.append(Reference(key=m.group(1).strip(), title=blocks[1] if len(blocks) > 1 else "",
                              authors=_split_authors(blocks[0]) if blocks else [], year=year.group(0) if year else "",
                              venue=blocks[2] if len(blocks) > 2 else ""))
    return refs


def _split_authors(line: str) -> list[str]:
    """"A. Smith, B. Jones, and C. Lee" -> three names; "Smith, J. and Lee, K." -> two (commas inside names kept)."""
    parts = [p.strip() for p in re.split(r",?\s+and\s+", line) if p.strip()]
    if len(parts) > 1 and all(p.count(",") == 1 for p in parts):
        return parts
    names = []
    for part in parts:
        pieces = [q.strip() for q in part.split(",") if q.strip()]
        names.extend(pieces if all(" " in q for q in pieces) else [part])
    return names
