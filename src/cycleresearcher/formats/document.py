"""One entry point to read any paper a user hands us: LaTeX (file, folder, arXiv archive), PDF, markdown,
plain text, or a Paper JSON written by this project.

    from cycleresearcher.formats.document import load_document
    doc = load_document(Path("2411.00816.tar.gz"))   # .tex, folder, .tar.gz/.tgz/.gz/.zip, .pdf, .md, .txt, .json
    print(doc.kind, doc.title, len(doc.text), doc.problems)

Everything inside a paper is data: nothing here interprets its text, and archives are extracted only after
every member has been checked (see archive.py). A file that yields no readable text (empty, binary, a PDF
without a text layer) raises InputError here, so no caller reviews, scores or detects nothing; FIFOs and
devices are refused before anything reads them (limits.py).
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import limits
from ..errors import InputError
from ..schema import Paper, Section
from .archive import find_main_tex, safe_extract
from .latex import LatexDocument, load_latex_project, parse_latex
from .pdf import read_pdf

log = logging.getLogger(__name__)

KINDS = ("latex", "pdf", "markdown", "text", "paper-json")
_TEX_SUFFIXES = (".tex", ".ltx", ".latex")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".gz", ".zip", ".tar", ".tar.bz2", ".tbz2", ".bz2", ".tar.xz", ".txz",
                     ".xz")
_MARKDOWN_SUFFIXES = (".md", ".markdown")
_TEXT_SUFFIXES = (".txt", ".text")
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"PK\x03\x04", b"PK\x05\x06", b"BZh", b"\xfd7zXZ\x00")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ABSTRACT_LINE = re.compile(r"^\s*(?:#+\s*)?\**abstract\b\**\s*[:.\-\u2014]?\s*(?P<rest>.*)$", re.I)
_NUMBERED_HEADING = re.compile(r"^\s*(?P<num>\d{1,2})\.?\s+(?P<title>[A-Z][A-Za-z][^\n]{0,78})\s*$")
# venue banners PDFs print above the title
_RUNNING_HEADER = re.compile(r"^\s*(published as|under review|preprint|accepted (at|to)|arxiv:\d|workshop on)", re.I)
_INTRO_LINE = re.compile(r"^\s*(?:\d{1,2}\.?|[IVX]+\.)?\s*introduction\s*$", re.I)
_ARCHIVE_STEM = re.compile(r"(\.tar)?\.(gz|tgz|zip|tar|bz2|tbz2|xz|txz)$", re.I)
_BINARY = "looks like binary data"


@dataclass
class Document:
    """A paper as read from disk: its text for models, its outline, and what went wrong reading it."""

    title: str = ""
    abstract: str = ""
    text: str = ""
    sections: list[Section] = field(default_factory=list)
    kind: str = "text"  # "latex" | "pdf" | "markdown" | "text" | "paper-json"
    source: str = ""  # the path it was read from ("" for text given in memory)
    latex: str = ""  # the LaTeX source (inputs expanded, comments stripped); "" unless kind is latex/paper-json
    problems: list[str] = field(default_factory=list)
    raw_latex: str = ""  # every LaTeX file as read, comments included (what the injection check reads)
    hidden: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) drawn invisibly in a PDF


# ---------------------------------------------------------------------------------------------- in-memory text


def _clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def _guess_abstract(lines: list[str]) -> str:
    for i, line in enumerate(lines):
        m = _ABSTRACT_LINE.match(line)
        if not m:
            continue
        out = [m.group("rest")] if m.group("rest").strip() else []
        for nxt in lines[i + 1:]:
            if _INTRO_LINE.match(nxt) or _NUMBERED_HEADING.match(nxt) or (not nxt.strip() and out):
                break
            out.append(nxt.strip())
        abstract = re.sub(r"\s+", " ", " ".join(out)).strip()
        return abstract[:5000]
    return ""


def _guess_sections(lines: list[str]) -> list[Section]:
    """Top-level numbered headings ("1 Introduction", "2. Method") in order 1, 2, 3, ... and their text."""
    heads: list[tuple[int, str]] = []
    expected = 1
    for i, line in enumerate(lines):
        m = _NUMBERED_HEADING.match(line)
        if m and int(m.group("num")) == expected and not m.group("title").rstrip().endswith((".", ",", ";")):
            heads.append((i, m.group("title").strip()))
            expected += 1
    sections = []
    for k, (i, title) in enumerate(heads):
        end = heads[k + 1][0] if k + 1 < len(heads) else len(lines)
        sections.append(Section(heading=title, text="\n".join(lines[i + 1: end]).strip()))
    return sections


def _markdown(text: str) -> tuple[str, str, list[Section]]:
    title, abstract, sections = "", "", []
    current: Optional[tuple[str, list[str]]] = None

    def close() -> None:
        nonlocal abstract
        if current is None:
            return
        body = "\n".join(current[1]).strip()
        if re.sub(r"[^a-z]", "", current[0].lower()) == "abstract" and not abstract:
            abstract = body
        else:
            sections.append(Section(heading=current[0], text=body))

    in_fence = False
    for line in text.split("\n"):
        if re.match(r"^\s{0,3}(```|~~~)", line):
            in_fence = not in_fence
        if not in_fence and re.match(r"^#\s+\S", line):
            close()
            current = None
            if not title:
                title = line.lstrip("#").strip()
            continue
        if not in_fence and re.match(r"^##\s+\S", line):
            close()
            current = (line[2:].strip().strip("#").strip(), [])
            continue
        if current is not None:
            current[1].append(line)
    close()
    return title, abstract, sections


def _from_latex(doc: LatexDocument, source: str) -> Document:
    return Document(title=doc.title, abstract=doc.abstract, text=doc.text, sections=doc.sections, kind="latex",
                    source=source, latex=doc.source, problems=list(doc.problems),
                    raw_latex=doc.raw_source or doc.source)


def document_from_text(text: str, kind: str = "text") -> Document:
    """A Document from text in memory. kind "latex" and "markdown" parse those formats; "text" and "pdf"
    guess the title (first line), the abstract (after an "Abstract" line) and numbered sections."""
    if kind not in KINDS:
        raise InputError(f"unknown document kind {kind!r}; expected one of {', '.join(KINDS)}")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if kind in ("latex", "paper-json"):
        doc = _from_latex(parse_latex(text), "")
        doc.kind = kind
        return doc
    text = _clean_text(text)
    if kind == "markdown":
        title, abstract, sections = _markdown(text)
        return Document(title=title, abstract=abstract, text=text, sections=sections, kind=kind)
    lines = text.split("\n")
    first = next((line.strip().lstrip("#").strip().strip("*").strip() for line in lines
                  if line.strip() and not _RUNNING_HEADER.match(line)), "")
    title = first if len(first) <= 200 else ""
    return Document(title=title, abstract=_guess_abstract(lines), text=text, sections=_guess_sections(lines),
                    kind=kind)


# ---------------------------------------------------------------------------------------------- files


def _read_text_file(path: Path) -> tuple[str, list[str]]:
    data = limits.read_bytes(path, "MAX_TEXT_FILE_BYTES", "document")
    try:
        text = data.decode("utf-8")
        problems = []
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        problems = [f"{path.name}: not valid UTF-8; undecodable bytes replaced"]
    bad = len(_CONTROL.findall(text)) + text.count("\ufffd")
    if text and bad > 0.05 * len(text):
        problems.append(f"{path.name}: {_BINARY} ({bad} of {len(text)} characters unreadable)")
    return text, problems


def _detect_kind(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir():
        return "latex-folder"
    if name.endswith(_TEX_SUFFIXES):
        return "latex"
    if name.endswith(".pdf"):
        return "pdf"
    if name.endswith(_MARKDOWN_SUFFIXES):
        return "markdown"
    if name.endswith(_TEXT_SUFFIXES):
        return "text"
    if name.endswith(".json"):
        return "paper-json"
    if name.endswith(_ARCHIVE_SUFFIXES):
        return "archive"
    with path.open("rb") as fh:  # no or unknown extension (arXiv downloads often have none): sniff
        head = fh.read(4096)
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(_COMPRESSED_MAGIC):
        return "archive"
    if b"\\documentclass" in head or b"\\begin{document}" in head:
        return "latex"
    raise InputError(f"{path}: unknown document kind; expected a .tex file or LaTeX folder, an arXiv archive "
                     f"(.tar.gz/.tgz/.gz/.zip), .pdf, .md, .txt or a paper .json")


def _load_archive(path: Path, work_dir: Path) -> Document:
    folder = safe_extract(path, work_dir)
    try:
        main = find_main_tex(folder)
    except FileNotFoundError:
        tex = limits.confined_files(folder, (".tex",))
        pdfs = limits.confined_files(folder, (".pdf",))
        if len(tex) == 1:  # a lone fragment without \documentclass (e.g. a gzipped body)
            main = tex[0]
        elif not tex and len(pdfs) == 1:  # arXiv serves PDF-only submissions as a bare gzip too
            doc = _load_pdf(pdfs[0])
            doc.source = str(path)
            return doc
        else:
            raise
    doc = _from_latex(load_latex_project(main), str(path))
    return doc


def _load_pdf(path: Path) -> Document:
    pdf = read_pdf(path)
    doc = document_from_text(pdf.text, kind="pdf")
    doc.source, doc.problems, doc.hidden = str(path), pdf.problems + doc.problems, pdf.hidden
    return doc


def _load_paper_json(path: Path) -> Document:
    text, problems = limits.decode_text(limits.read_bytes(path, "MAX_JSON_BYTES", "paper JSON"), path)
    data = limits.loads_json(text, path)
    try:
        paper = Paper.from_dict(data)
    except (TypeError, ValueError) as exc:  # InputError from the record's checks, or an older record shape
        raise InputError(f"{path}: not a Paper record ({exc})") from None
    latex = paper.full_latex
    parsed = parse_latex(latex) if latex.strip() else None
    title = paper.title or (parsed.title if parsed else "")
    abstract = paper.abstract or (parsed.abstract if parsed else "")
    sections = list(paper.sections) or (parsed.sections if parsed else [])
    if parsed:
        body = parsed.text
    else:
        parts = [title, abstract] + [f"{s.heading}\n\n{s.text}" for s in sections]
        body = "\n\n".join(p for p in parts if p.strip())
    return Document(title=title, abstract=abstract, text=body, sections=sections, kind="paper-json",
                    source=str(path), latex=latex, problems=problems + (parsed.problems if parsed else []),
                    raw_latex=latex)


def load_document(path: Path, work_dir: Optional[Path] = None) -> Document:
    """Read a paper from `path`: a .tex file, a LaTeX folder, an arXiv archive (.tar.gz/.tgz/.gz/.zip, extracted
    safely into work_dir/<archive name> or a temporary folder), a .pdf, .md/.markdown, .txt, or a .json holding
    a Paper record.

    Raises FileNotFoundError for a missing path, InputError for a kind it cannot read, a FIFO or device, or a
    document with no readable text (empty, binary, a PDF without text), and LimitExceeded past a limit of
    limits.py."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"document not found: {path}")
    if not path.is_dir():
        limits.check_regular_file(path, "document")
    return _require_text(_load(path, work_dir), path)


def _load(path: Path, work_dir: Optional[Path]) -> Document:
    kind = _detect_kind(path)
    if kind in ("latex", "latex-folder"):
        return _from_latex(load_latex_project(path), str(path))
    if kind == "pdf":
        return _load_pdf(path)
    if kind == "paper-json":
        return _load_paper_json(path)
    if kind == "archive":
        if work_dir is not None:
            return _load_archive(path, _archive_folder(Path(work_dir), path.name))
        with tempfile.TemporaryDirectory(prefix="cycleresearcher-") as tmp:
            return _load_archive(path, Path(tmp))
    text, problems = _read_text_file(path)
    doc = document_from_text(text, kind=kind)
    doc.source, doc.problems = str(path), problems + doc.problems
    return doc


def _archive_folder(work_dir: Path, name: str) -> Path:
    """work_dir/<archive name without its suffixes>, as one safe path component: an archive called
    `...tar.gz` (stem `..`) or `a/b.zip` must not put its files beside or above work_dir."""
    stem = _ARCHIVE_STEM.sub("", name)
    stem = re.sub(r"[^A-Za-z0-9._+-]", "_", stem).strip(".") or "paper"
    folder = work_dir / stem
    if not limits.is_inside(work_dir, folder) or folder.resolve() == work_dir.resolve():
        raise InputError(f"archive name {name!r} does not give a folder inside {work_dir}")
    return folder


def _require_text(doc: Document, path: Path) -> Document:
    """The document, or InputError when it holds nothing to read (every caller would score emptiness)."""
    binary = any(_BINARY in p for p in doc.problems)
    if doc.text.strip() and not binary:
        return doc
    why = "; ".join(doc.problems[:3]) or "the file is empty"
    raise InputError(f"{path}: no readable text in this {doc.kind} document ({why})")
