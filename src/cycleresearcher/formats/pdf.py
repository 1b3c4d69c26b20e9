"""PDF -> plain text with pypdf, never raising on a bad PDF.

Encrypted, truncated or non-PDF files give ("", [problem]); a page that fails is skipped and named in the
problems. Words hyphenated across line ends ("repre-\\nsentation") are joined again. Each page is bounded
(limits.MAX_PDF_PAGE_CONTENT_BYTES, MAX_PDF_PAGE_OPERATORS, MAX_PDF_PAGE_SECONDS; MAX_PDF_SECONDS for the file):
a page past a limit is skipped with a problem naming the limit, so a crafted page cannot hang a review.

Text a human cannot see but a model reads (white fill, invisible render mode 3, glyphs under 1 pt) is
collected in `PdfText.hidden`, for the prompt-injection check.

    from cycleresearcher.formats.pdf import pdf_to_text, read_pdf
    text, problems = pdf_to_text(Path("paper.pdf"), max_pages=30)
    pdf = read_pdf(Path("paper.pdf")); pdf.hidden     # [("white text", "..."), ...]
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import limits

log = logging.getLogger(__name__)

# a word ending in a lower-case letter, a hyphen (or soft hyphen) at the end of a line, a lower-case letter next
_HYPHEN_BREAK = re.compile(r"(?P<word>[^\s-]*[a-z])(?P<h>-|\u00ad)[ \t]*\n[ \t]*(?=[a-z])")
_SOFT_HYPHEN = "\u00ad"
_HYPHEN_PREFIXES = {"self", "non", "semi", "cross", "quasi", "well"}  # "self-\nsupervised" keeps its hyphen


def fix_hyphenation(text: str) -> str:
    """Join words split across lines: "repre-\\nsentation" -> "representation".

    Only lower-case on both sides, so "GPT-\\n4" stays as it is; a compound ("state-of-the-\\nart") keeps its
    hyphen.
    """
    def join(m: re.Match) -> str:
        # "state-of-the-\nart": the line broke at a real hyphen of a compound, keep it
        start = m.start("word")
        compound = m.group("h") == "-" and (start > 0 and m.string[start - 1] == "-"
                                            or m.group("word").lower() in _HYPHEN_PREFIXES)
        return m.group("word") + ("-" if compound else "")

    text = _HYPHEN_BREAK.sub(join, text)
    return text.replace(_SOFT_HYPHEN, "")


def _clean_page(text: str) -> str:
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return fix_hyphenation(text).strip()


@dataclass
class PdfText:
    """What read_pdf found: the text, what went wrong, and text drawn invisibly as (kind, text) pairs."""

    text: str = ""
    problems: list[str] = field(default_factory=list)
    hidden: list[tuple[str, str]] = field(default_factory=list)


class _PageLimit(Exception):
    """Raised from inside pypdf's operator loop to stop a page that passes a limit."""


_TINY_PT = 1.0  # glyphs smaller than this (points, after the text and page matrices) are unreadable
_WHITE = 0.97  # fill components at or above this are white on a white page


class _PageWatch:
    """pypdf visitor: counts operators and time (raising _PageLimit) and tracks the fill colour and text
    render mode, so the text pypdf reports can be told visible or hidden."""

    def __init__(self, page_started: float, file_started: float) -> None:
        self.operators = 0
        self.page_started, self.file_started = page_started, file_started
        self.fill_white = False
        self.invisible = False
        self.stack: list[tuple[bool, bool]] = []
        self.hidden_show = False  # the state at the last text-showing operator
        self.hidden: list[tuple[str, str]] = []
        self.white_at_show = False

    def before(self, operator, operands, cm, tm) -> None:
        self.operators += 1
        if self.operators % 1000 == 0 or self.operators > limits.MAX_PDF_PAGE_OPERATORS:
            now = time.monotonic()
            if self.operators > limits.MAX_PDF_PAGE_OPERATORS:
                raise _PageLimit("MAX_PDF_PAGE_OPERATORS")
            if now - self.page_started > limits.MAX_PDF_PAGE_SECONDS:
                raise _PageLimit("MAX_PDF_PAGE_SECONDS")
            if now - self.file_started > limits.MAX_PDF_SECONDS:
                raise _PageLimit("MAX_PDF_SECONDS")
        if operator == b"q":
            self.stack.append((self.fill_white, self.invisible))
        elif operator == b"Q" and self.stack:
            self.fill_white, self.invisible = self.stack.pop()
        elif operator in (b"g", b"rg", b"k", b"sc", b"scn"):
            self.fill_white = _is_white(operator, operands)
        elif operator == b"Tr" and operands:
            self.invisible = _number(operands[0]) == 3
        elif operator in (b"Tj", b"TJ", b"'", b'"'):
            self.white_at_show = self.fill_white
            self.hidden_show = self.fill_white or self.invisible

    def text(self, text, cm, tm, font, font_size) -> None:
        if not text or not text.strip():
            return
        kind = ""
        if self.hidden_show:
            kind = "white text" if self.white_at_show else "invisible text"
        elif _effective_size(font_size, cm, tm) < _TINY_PT:
            kind = "microscopic text"
        if kind:
            self.hidden.append((kind, text))


def _number(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _is_white(operator: bytes, operands) -> bool:
    values = [_number(v) for v in operands]
    values = [v for v in values if v is not None]
    if operator == b"k" or (operator in (b"sc", b"scn") and len(values) == 4):
        return len(values) == 4 and all(v <= 1 - _WHITE for v in values)  # CMYK: no ink
    if operator in (b"g", b"rg", b"sc", b"scn"):
        return bool(values) and len(values) in (1, 3) and all(v >= _WHITE for v in values)
    return False


def _effective_size(font_size, cm, tm) -> float:
    """Glyph height in points: the font size scaled by the text and page matrices."""
    size = _number(font_size)
    if size is None:
        return math.inf
    try:
        scale = math.sqrt(abs(float(tm[0]) * float(tm[3]) - float(tm[1]) * float(tm[2])))
        scale *= math.sqrt(abs(float(cm[0]) * float(cm[3]) - float(cm[1]) * float(cm[2])))
    except (TypeError, ValueError, IndexError):
        return math.inf
    if not math.isfinite(scale) or scale == 0:
        return math.inf if not math.isfinite(scale) else 0.0
    return abs(size) * scale


def _page_text(page, number: int, name: str, file_started: float, result: PdfText) -> str:
    """One page's text within the page limits; a problem (and "") when it cannot be read."""
    try:
        contents = page.get_contents()
        data = contents.get_data() if contents is not None else b""
    except Exception as exc:  # noqa: BLE001  pypdf raises many types on damaged files (see read_pdf)
        result.problems.append(f"{name}: page {number} could not be read ({type(exc).__name__}: {exc})")
        return ""
    if len(data) > limits.MAX_PDF_PAGE_CONTENT_BYTES:
        result.problems.append(f"{name}: page {number} skipped: its content of {len(data):,} bytes exceeds "
                               f"cycleresearcher.limits.MAX_PDF_PAGE_CONTENT_BYTES")
        return ""
    watch = _PageWatch(time.monotonic(), file_started)
    try:
        text = page.extract_text(visitor_operand_before=watch.before, visitor_text=watch.text) or ""
    except _PageLimit as limit:
        result.problems.append(f"{name}: page {number} skipped: it exceeds cycleresearcher.limits.{limit}")
        return ""
    except RecursionError:
        result.problems.append(f"{name}: page {number} skipped: nested too deeply to read")
        return ""
    except Exception as exc:  # noqa: BLE001  see read_pdf
        result.problems.append(f"{name}: page {number} could not be read ({type(exc).__name__}: {exc})")
        return ""
    result.hidden.extend((kind, f"page {number}: {' '.join(t.split())}") for kind, t in _merge(watch.hidden))
    return text


def _merge(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Neighbouring pieces of the same kind joined, so a hidden sentence drawn word by word is one entry."""
    out: list[tuple[str, str]] = []
    for kind, text in pieces:
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + " " + text)
        else:
            out.append((kind, text))
    return out


def read_pdf(path: Path, max_pages: Optional[int] = None) -> PdfText:
    """The text, problems and hidden text of a PDF, at most `max_pages` pages.

    Raises FileNotFoundError for a missing file, InputError for a FIFO or device and LimitExceeded past
    limits.MAX_PDF_BYTES; every problem inside the PDF is reported instead.
    """
    from pypdf import PdfReader

    path = Path(path)
    limits.check_regular_file(path, "PDF")
    if path.stat().st_size > limits.MAX_PDF_BYTES:
        raise limits.exceeded(path, f"PDF of {path.stat().st_size:,} bytes", "MAX_PDF_BYTES")
    result = PdfText()
    # pypdf raises many exception types on damaged files (PdfReadError, but also KeyError, TypeError,
    # struct.error, ...): a broken upload must become a problem, not a crash
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")  # many "encrypted" PDFs only carry an owner password
            except Exception as exc:  # noqa: BLE001  see above; includes missing crypto dependencies
                result.problems.append(f"{path.name}: encrypted PDF, cannot decrypt ({type(exc).__name__}: {exc})")
                return result
            if not ok:
                result.problems.append(f"{path.name}: encrypted PDF needs a password")
                return result
        pages = reader.pages
        n_pages = len(pages)
    except Exception as exc:  # noqa: BLE001  see above
        result.problems.append(f"{path.name}: not a readable PDF ({type(exc).__name__}: {exc})")
        return result

    limit = n_pages if max_pages is None else max(0, min(max_pages, n_pages))
    started = time.monotonic()
    texts = []
    for i in range(limit):
        if time.monotonic() - started > limits.MAX_PDF_SECONDS:
            result.problems.append(f"{path.name}: stopped after page {i}: reading exceeds "
                                   "cycleresearcher.limits.MAX_PDF_SECONDS")
            break
        try:
            page = pages[i]
        except Exception as exc:  # noqa: BLE001  see above
            result.problems.append(f"{path.name}: page {i + 1} could not be read ({type(exc).__name__}: {exc})")
            continue
        page_text = _clean_page(_page_text(page, i + 1, path.name, started, result))
        if page_text:
            texts.append(page_text)
    result.text = "\n\n".join(texts)
    if n_pages and not result.text.strip():
        result.problems.append(f"{path.name}: no extractable text in {limit} page(s) (a scanned PDF?)")
    elif not n_pages:
        result.problems.append(f"{path.name}: PDF has no pages")
    return result


def pdf_to_text(path: Path, max_pages: Optional[int] = None) -> tuple[str, list[str]]:
    """(text, problems) of a PDF: pages joined with blank lines, at most `max_pages` pages (see read_pdf)."""
    result = read_pdf(path, max_pages)
    return result.text, result.problems
