"""BibTeX text <-> Reference records (bibtexparser v2 splits the file; we resolve and decode the values).

bibtexparser's own string middleware leaves `nips # { 30}` concatenations unresolved, so values are taken raw
and resolved here: `@string` macros (also inside other macros), the standard month macros, `#` joins, quoted
and braced parts. Broken entries become problems with their line number and never stop the rest. A value that
expands past limits.MAX_BIBTEX_VALUE_CHARS (`@string{s2 = s1 # s1}` doubling forty times reaches terabytes)
raises LimitExceeded instead.

    from cycleresearcher.formats.bibtex import load_bibtex, render_bibtex
    refs, problems = load_bibtex(Path("refs.bib"))
    Path("out.bib").write_text(render_bibtex(refs))
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from .. import limits
from ..schema import Reference

log = logging.getLogger(__name__)

_MONTHS = {m: str(i) for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_MONTH_NAMES = dict(zip(_MONTHS, ("January", "February", "March", "April", "May", "June", "July", "August",
                                  "September", "October", "November", "December")))
_VENUE_FIELDS = ("journal", "booktitle", "howpublished", "publisher", "school", "institution", "organization")


def _split_top(value: str, sep_pattern: str) -> list[str]:
    """Split `value` on a regex that matches only outside braces and quotes."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    sep = re.compile(sep_pattern)
    while i < len(value):
        c = value[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        elif c == '"' and depth == 0:
            quoted = not quoted
        elif depth == 0 and not quoted:
            m = sep.match(value, i)
            if m and m.end() > i:
                parts.append(value[start:i])
                start = i = m.end()
                continue
        i += 1
    parts.append(value[start:])
    return parts


def _resolve(raw: str, macros: dict[str, str], where: str, problems: list[str]) -> str:
    """A raw field value as LaTeX text without its outer delimiters, macros expanded (bounded in size)."""
    out = []
    size = 0
    for part in _split_top(raw.strip(), r"\s*#\s*"):
        if size > limits.MAX_BIBTEX_VALUE_CHARS:
            break
        part = part.strip()
        if len(part) >= 2 and ((part[0], part[-1]) in (("{", "}"), ('"', '"'))):
            out.append(part[1:-1])
        elif part.isdigit():
            out.append(part)
        elif part.lower() in macros:
            out.append(macros[part.lower()])
        elif part.lower() in _MONTH_NAMES:
            out.append(_MONTH_NAMES[part.lower()])
        elif part:
            problems.append(f"{where}: undefined @string macro {part[:80]!r}")
            out.append(part)
        size += len(out[-1]) if out else 0
    if size > limits.MAX_BIBTEX_VALUE_CHARS:
        raise limits.exceeded(where, "a BibTeX value after macro expansion", "MAX_BIBTEX_VALUE_CHARS")
    return "".join(out)


def _text(latex: str) -> str:
    """Plain text of a BibTeX value: braces stripped, LaTeX accents decoded, whitespace collapsed."""
    if "\\" in latex or "$" in latex:
        from .latex import latex_to_text

        latex = latex_to_text(latex)
    latex = latex.replace("{", "").replace("}", "").replace("~", " ")
    return re.sub(r"\s+", " ", latex).strip()


def _render_entry(entry_type: str, key: str, fields: list[tuple[str, str]]) -> str:
    width = max((len(name) for name, _ in fields), default=0)
    lines = [f"  {name.ljust(width)} = {{{value}}}" for name, value in fields]
    return f"@{entry_type}{{{key},\n" + ",\n".join(lines) + "\n}"


def _failure(block) -> str:
    error = block.error
    reason = getattr(error, "abort_reason", "") or str(error) or type(error).__name__
    first = (block.raw or "").strip().splitlines()[0][:80] if (block.raw or "").strip() else ""
    line = block.start_line + 1 if block.start_line is not None else "?"
    return f"line {line}: broken entry {first!r}: {reason.strip()}"


def parse_bibtex(text: str, source: str = "") -> tuple[list[Reference], list[str]]:
    """(references, problems) of a BibTeX text. Never raises on bad BibTeX (problems name the line); raises
    LimitExceeded (naming `source` and the line) when a value expands past limits.MAX_BIBTEX_VALUE_CHARS."""
    import bibtexparser

    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    prefix = f"{source}: " if source else ""
    problems: list[str] = []
    library = bibtexparser.parse_string(text, parse_stack=[])  # raw values: we resolve them below

    macros: dict[str, str] = {}
    for string in library.strings:  # in file order, so a macro may use the ones defined before it
        where = f"{prefix}line {string.start_line + 1}"
        macros[string.key.lower()] = _resolve(string.value, macros, where, problems)

    for block in library.failed_blocks:
        problems.append(_failure(block))

    refs: list[Reference] = []
    for entry in library.entries:
        where = f"{prefix}line {entry.start_line + 1} ({entry.key})"
        fields: list[tuple[str, str]] = []
        for f in entry.fields:
            name = f.key.lower()
            if any(name == seen for seen, _ in fields):
                problems.append(f"{where}: duplicate field {name!r}, kept the first")
                continue
            fields.append((name, _resolve(f.value, macros, where, problems)))
        values = dict(fields)
        if values.get("archiveprefix", "").lower() == "arxiv" and values.get("eprint"):
            venue = f"arXiv:{values['eprint']}"
        else:
            venue = next((values[n] for n in _VENUE_FIELDS if values.get(n)), "")
        author_raw = values.get("author") or values.get("editor") or ""
        authors = [_text(a) for a in _split_top(author_raw, r"\s+and\s+") if _text(a)]
        year = _text(values.get("year", "")) or _text(values.get("date", ""))[:4]
        title = _text(values.get("title", ""))
        if not title:
            problems.append(f"{where}: entry has no title")
        refs.append(Reference(key=entry.key, title=title, authors=authors, year=year, venue=_text(venue),
                              abstract=_text(values.get("abstract", "")),
                              bibtex=_render_entry(entry.entry_type.lower(), entry.key, fields)))
    return refs, problems


def load_bibtex(path: Path) -> tuple[list[Reference], list[str]]:
    """`parse_bibtex` of a .bib file (UTF-8, or Latin-1 for old files, which is noted as a problem)."""
    path = Path(path)
    data = limits.read_bytes(path, "MAX_TEXT_FILE_BYTES", "BibTeX file")
    try:
        text, note = data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        text, note = data.decode("latin-1"), [f"{path.name}: not UTF-8, read as Latin-1"]
    refs, problems = parse_bibtex(text, source=str(path))
    return refs, note + problems


def _brace_safe(value: str) -> str:
    depth = 0
    for c in value:
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            break
    return value if depth == 0 else value.replace("{", "").replace("}", "")


def render_bibtex(refs: list[Reference]) -> str:
    """A .bib text: each reference's own `bibtex` when it has one, else a minimal @misc entry."""
    out = []
    for ref in refs:
        if ref.bibtex.strip():
            out.append(ref.bibtex.strip())
            continue
        fields = [("title", ref.title), ("author", " and ".join(ref.authors)), ("year", ref.year)]
        fields = [(name, _brace_safe(value)) for name, value in fields if value]
        key = re.sub(r"[\s,{}\"#%'()=]", "", ref.key) or "ref"
        out.append(_render_entry("misc", key, fields))
    return "\n\n".join(out) + ("\n" if out else "")
