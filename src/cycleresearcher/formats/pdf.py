"""PDF -> plain text with pypdf, never raising on a bad PDF.

Encrypted, truncated or non-PDF files give ("", [problem]); a page that fails is skipped and named in the
problems. Words hyphenated across line ends ("repre-\\nsentation") are joined again.

    from cycleresearcher.formats.pdf import pdf_to_text
    text, problems = pdf_to_text(Path("paper.pdf"), max_pages=30)
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Optional

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


def pdf_to_text(path: Path, max_pages: Optional[int] = None) -> tuple[str, list[str]]:
    """(text, problems) of a PDF: pages joined with blank lines, at most `max_pages` pages.

    Raises FileNotFoundError only for a missing file; every problem inside the PDF is reported instead.
    """
    from pypdf import PdfReader

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PDF not found: {path}")
    problems: list[str] = []
    # pypdf raises many exception types on damaged files (PdfReadError, but also KeyError, TypeError,
    # struct.error, ...): a broken upload must become a problem, not a crash
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")  # many "encrypted" PDFs only carry an owner password
            except Exception as exc:  # noqa: BLE001  see above; includes missing crypto dependencies
                return "", [f"{path.name}: encrypted PDF, cannot decrypt ({type(exc).__name__}: {exc})"]
            if not ok:
                return "", [f"{path.name}: encrypted PDF needs a password"]
        pages = reader.pages
        n_pages = len(pages)
    except Exception as exc:  # noqa: BLE001  see above
        return "", [f"{path.name}: not a readable PDF ({type(exc).__name__}: {exc})"]

    limit = n_pages if max_pages is None else max(0, min(max_pages, n_pages))
    texts = []
    for i in range(limit):
        try:
            page_text = pages[i].extract_text() or ""
        except Exception as exc:  # noqa: BLE001  see above
            problems.append(f"{path.name}: page {i + 1} could not be read ({type(exc).__name__}: {exc})")
            continue
        page_text = _clean_page(page_text)
        if page_text:
            texts.append(page_text)
    text = "\n\n".join(texts)
    if n_pages and not text.strip():
        problems.append(f"{path.name}: no extractable text in {limit} page(s) (a scanned PDF?)")
    elif not n_pages:
        problems.append(f"{path.name}: PDF has no pages")
    return text, problems
