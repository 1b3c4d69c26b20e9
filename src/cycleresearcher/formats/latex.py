"""LaTeX source -> title, abstract, sections, citations and plain text, without ever raising.

The input is whatever a user or a model hands us: a full arXiv project, one file, or the `\\title{}...
\\section{}` fragment the policy writes. Unbalanced braces and a missing `\\end{document}` are problems to
report, not errors. Multi-file projects are stitched together by following `\\input`/`\\include` inside the
main file's folder only: a submission must not make us read /etc/passwd.

    from cycleresearcher.formats.latex import load_latex_project, parse_latex
    doc = load_latex_project(Path("paper/"))        # or a .tex file
    doc = parse_latex(model_output_latex)
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..schema import Section
from .archive import find_main_tex

log = logging.getLogger(__name__)

MAX_INPUT_DEPTH = 20  # nested \input levels before we stop following
MAX_PROJECT_BYTES = 20_000_000  # all files of a project together

_COMMENT = re.compile(r"(?<!\\)((?:\\\\)*)%.*")
_INPUT = re.compile(r"\\(input|include|subfile)\s*(?:\{([^{}]*)\}|\s([^\s{}\\%]+))")
_CITE = re.compile(
    r"\\(?:[cC]ite[a-zA-Z]*|[pP]arencite|[tT]extcite|[aA]utocite|[fF]ootcite|[sS]martcite|[sS]upercite|"
    r"fullcite|nocite)\*?\s*(?:\[[^\]]*\]\s*){0,2}\{([^{}]*)\}")
_IFFALSE = re.compile(r"\\iffalse\b.*?(?:\\fi\b|$)", re.S)
_COMMENT_ENV = re.compile(r"\\begin\s*\{comment\}.*?(?:\\end\s*\{comment\}|$)", re.S)
_LABEL = re.compile(r"\\label\s*\{[^{}]*\}")
_BIB = re.compile(r"\\(?:bibliography|addbibresource|addglobalbib)\s*(?:\[[^\]]*\])?\s*\{([^{}]*)\}")
_SECTION = re.compile(r"\\section\*?\s*(?:\[[^\]]*\])?\s*\{")
_SUBSECTION = re.compile(r"\\subsection\*?\s*(?:\[[^\]]*\])?\s*\{")
_BEGIN_DOC = re.compile(r"\\begin\s*\{document\}")
_END_DOC = re.compile(r"\\end\s*\{document\}")
_ABSTRACT_ENV = re.compile(r"\\begin\s*\{abstract\}(.*?)(?:\\end\s*\{abstract\}|(?=\\section)|$)", re.S)
_BACK_MATTER = re.compile(
    r"\\begin\s*\{thebibliography\}.*?(?:\\end\s*\{thebibliography\}|$)|\\bibliographystyle\s*\{[^{}]*\}|"
    r"\\bibliography\s*\{[^{}]*\}|\\printbibliography\b(?:\[[^\]]*\])?", re.S)
# front-matter macros dropped from the body (the title is put back once, first): name -> argument count
_TITLE_MACROS = {"title": 1, "author": 1, "date": 1, "thanks": 1, "affiliation": 1, "address": 1, "email": 1,
                 "icmltitle": 1, "icmltitlerunning": 1, "icmlauthor": 2, "icmlaffiliation": 2,
                 "icmlcorrespondingauthor": 2, "icmlkeywords": 1, "runningtitle": 1, "shorttitle": 1,
                 "keywords": 1}


@dataclass
class LatexDocument:
    """What we read out of a LaTeX paper. `text` is the plain text of the body, title first."""

    title: str = ""
    abstract: str = ""
    sections: list[Section] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)  # keys, in order of first use, unique
    bibliography_files: list[str] = field(default_factory=list)  # as written in \bibliography{...}
    text: str = ""
    problems: list[str] = field(default_factory=list)
    source: str = ""  # the LaTeX after \input expansion and comment stripping


# ---------------------------------------------------------------------------------------------- small helpers


def strip_comments(source: str) -> str:
    """Remove `%` comments (not `\\%`); a line that held only a comment disappears with its newline."""
    out = []
    for line in source.splitlines(keepends=True):
        stripped = _COMMENT.sub(r"\1", line.rstrip("\r\n"))
        if stripped != line.rstrip("\r\n") and not stripped.strip():
            continue  # a comment-only line: dropping it keeps paragraphs together, as TeX does
        out.append(stripped + ("\n" if line.endswith(("\n", "\r")) else ""))
    return "".join(out)


def strip_hidden(source: str) -> str:
    """Remove text TeX never typesets: `\\iffalse ... \\fi` and `comment` environments.

    Such blocks are where instructions aimed at an LLM reviewer hide; pylatexenc would print them.
    """
    source = _IFFALSE.sub("", source)
    return _COMMENT_ENV.sub("", source)


def braced_argument(source: str, start: int) -> tuple[str, int]:
    """The text of the `{...}` group opening at or after `start` (skipping spaces and one `[...]`).

    Returns (content, index after the closing brace). An unclosed group ends at the end of its line, so one
    missing brace in a title does not swallow the paper.
    Returns ("", start) when no group opens there.
    """
    i = start
    n = len(source)
    while i < n and source[i] in " \t\n":
        i += 1
    if i < n and source[i] == "[":
        close = source.find("]", i)
        if close != -1:
            i = close + 1
            while i < n and source[i] in " \t\n":
                i += 1
    if i >= n or source[i] != "{":
        return "", start
    depth, j = 0, i
    while j < n:
        c = source[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return source[i + 1: j], j + 1
        j += 1
    eol = source.find("\n", i)
    return (source[i + 1:], n) if eol == -1 else (source[i + 1: eol], eol)


def _remove_macro(source: str, name: str, nargs: int = 1) -> str:
    """Drop every `\\name[opt]{arg}...` (with its `nargs` arguments) from the source."""
    pattern = re.compile(rf"\\{name}\*?(?![a-zA-Z@])")
    out, pos = [], 0
    for m in pattern.finditer(source):
        if m.start() < pos:
            continue
        out.append(source[pos: m.start()])
        end = m.end()
        for _ in range(nargs):
            _, end = braced_argument(source, end)
        pos = end
    out.append(source[pos:])
    return "".join(out)


def _first_argument(source: str, name: str) -> Optional[str]:
    m = re.search(rf"\\{name}\*?(?![a-zA-Z@])", source)
    if not m:
        return None
    content, end = braced_argument(source, m.end())
    return content if end != m.end() else None


def _brace_balance(source: str) -> int:
    unescaped = re.sub(r"\\.", "", source, flags=re.S)
    return unescaped.count("{") - unescaped.count("}")


def _clean(text: str) -> str:
    """Collapse runs of blank lines and trailing spaces left by the conversion."""
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n[ \t]+(?=\S)", "\n", text)
    text = re.sub(r"(?<=\S)[ \t]{2,}", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------------------------------------- to text


_CONTEXT = None


def _latex_context():
    """pylatexenc's default macros, with section headings kept as written and a date-free \\maketitle."""
    global _CONTEXT
    if _CONTEXT is None:
        from pylatexenc.latex2text import MacroTextSpec, get_default_latex_context_db

        # pylatexenc passes the converter only to a parameter named `l2tobj`
        def heading(n, l2tobj) -> str:
            return "\n\n" + _one_line(l2tobj.node_arg_to_text(n, 2)) + "\n\n"

        def maketitle(n, l2tobj) -> str:
            # pylatexenc prints today's date when \date is absent; a paper's text must not change daily
            parts = [getattr(l2tobj, "_doc_title", ""), getattr(l2tobj, "_doc_author", "")]
            return "\n".join(_one_line(p) for p in parts if p.strip()) + "\n\n"

        db = get_default_latex_context_db()
        db.add_context_category("cycleresearcher", prepend=True, macros=[
            MacroTextSpec("section", simplify_repl=heading),
            MacroTextSpec("subsection", simplify_repl=heading),
            MacroTextSpec("subsubsection", simplify_repl=heading),
            MacroTextSpec("maketitle", simplify_repl=maketitle),
            MacroTextSpec("date", simplify_repl=""),
            MacroTextSpec("thanks", simplify_repl=""),
            MacroTextSpec("bibliographystyle", simplify_repl=""),
            MacroTextSpec("bibliography", simplify_repl=""),
        ])
        _CONTEXT = db
    return _CONTEXT


def latex_to_text(source: str) -> str:
    """Plain text of a LaTeX snippet (pylatexenc), math kept readable: `$α + x^2$`.

    Never raises: on input pylatexenc cannot handle it falls back to a crude macro strip.
    """
    from pylatexenc.latex2text import LatexNodes2Text

    # a fresh converter each call: pylatexenc keeps \title/\author state on the instance
    converter = LatexNodes2Text(latex_context=_latex_context(), math_mode="with-delimiters")
    # pylatexenc does not know natbib/biblatex argument shapes: render citations ourselves, drop labels
    source = _CITE.sub(_render_cite, source)
    source = _LABEL.sub("", source)
    try:
        text = converter.latex_to_text(source, tolerant_parsing=True)
    except Exception as exc:  # noqa: BLE001  pylatexenc documents no error contract; the caller must not fail
        log.warning("pylatexenc failed (%s: %s); using the crude fallback", type(exc).__name__, exc)
        text = _crude_text(source)
    return _clean(text)


def _render_cite(m: re.Match) -> str:
    keys = [k.strip() for k in m.group(1).split(",") if k.strip() and k.strip() != "*"]
    return "" if m.group(0).startswith("\\nocite") or not keys else "[" + ", ".join(keys) + "]"


def _crude_text(source: str) -> str:
    text = re.sub(r"\\(?:begin|end)\s*\{[^{}]*\}", " ", source)
    text = re.sub(r"\\[a-zA-Z@]+\*?", " ", text)
    return text.replace("{", "").replace("}", "")


# ---------------------------------------------------------------------------------------------- parsing


def _split_sections(body: str, pattern: re.Pattern) -> tuple[str, list[tuple[str, str]]]:
    """(text before the first heading, [(heading latex, content latex)])."""
    heads = []
    for m in pattern.finditer(body):
        heading, end = braced_argument(body, m.end() - 1)
        heads.append((m.start(), end, heading))
    if not heads:
        return body, []
    pieces = []
    for i, (_, end, heading) in enumerate(heads):
        stop = heads[i + 1][0] if i + 1 < len(heads) else len(body)
        pieces.append((heading, body[end:stop]))
    return body[: heads[0][0]], pieces


def parse_latex(source: str) -> LatexDocument:
    """Read a LaTeX document or fragment; never raises, reports what looks wrong in `problems`."""
    if not isinstance(source, str):
        source = bytes(source).decode("utf-8", "replace")
    problems: list[str] = []
    src = strip_hidden(strip_comments(source.replace("\x00", "")))

    balance = _brace_balance(src)
    if balance:
        problems.append(f"unbalanced braces: {abs(balance)} more {'{' if balance > 0 else '}'} than "
                        f"{'}' if balance > 0 else '{'}")
    begin = _BEGIN_DOC.search(src)
    if begin:
        preamble, body = src[: begin.start()], src[begin.end():]
        end = _END_DOC.search(body)
        if end:
            body = body[: end.start()]
        else:
            problems.append("missing \\end{document}")
    else:
        preamble, body = "", src
        if re.search(r"\\documentclass\b", src):
            problems.append("missing \\begin{document}")

    title_tex = next((t for t in (_first_argument(part, name) for name in ("title", "icmltitle")
                                  for part in (body, preamble)) if t), "")
    title = _one_line(latex_to_text(_remove_macro(title_tex, "thanks").replace("\\\\", " ")))
    if not title:
        problems.append("no \\title")

    citations: list[str] = []
    for m in _CITE.finditer(src):
        for key in m.group(1).split(","):
            key = key.strip()
            if key and key != "*" and key not in citations:
                citations.append(key)
    bib_files: list[str] = []
    for m in _BIB.finditer(src):
        for name in m.group(1).split(","):
            if name.strip() and name.strip() not in bib_files:
                bib_files.append(name.strip())

    body = _BACK_MATTER.sub("", body)
    for name, nargs in _TITLE_MACROS.items():
        body = _remove_macro(body, name, nargs)
    body = re.sub(r"\\maketitle\b", "", body)

    abstract_tex = ""
    m = _ABSTRACT_ENV.search(body)
    if m:
        abstract_tex = m.group(1)
        body = body[: m.start()] + body[m.end():]
    else:
        macro = _first_argument(body, "abstract") or _first_argument(preamble, "abstract")
        if macro:
            abstract_tex = macro
            body = _remove_macro(body, "abstract")
    # an abstract is prose: source line breaks are spaces, as TeX reads them
    abstract = re.sub(r"[ \t]*(?<!\n)\n(?!\n)[ \t]*", " ", _clean(latex_to_text(abstract_tex)))

    front, pieces = _split_sections(body, _SECTION)
    if not pieces:  # a short paper or fragment may only use \subsection
        front, pieces = _split_sections(body, _SUBSECTION)
    sections = [Section(heading=_one_line(latex_to_text(h)), text=latex_to_text(c)) for h, c in pieces]
    if not sections:
        problems.append("no \\section headings")

    parts = [title, ("Abstract\n\n" + abstract) if abstract else "", latex_to_text(front)]
    parts += [f"{s.heading}\n\n{s.text}" for s in sections]
    text = _clean("\n\n".join(p for p in parts if p.strip()))
    return LatexDocument(title=title, abstract=abstract, sections=sections, citations=citations,
                         bibliography_files=bib_files, text=text, problems=problems, source=src)


# ---------------------------------------------------------------------------------------------- projects


def _read_tex(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # old arXiv sources; every byte decodes


def _resolve_input(root: Path, name: str) -> tuple[Optional[Path], str]:
    """(path, "") for an input inside `root`, or (None, why not)."""
    name = name.strip().strip('"')
    if not name:
        return None, "empty file name"
    if os.path.isabs(name) or name.startswith("~") or re.match(r"^[A-Za-z]:", name):
        return None, "absolute path refused"
    real_root = os.path.realpath(root)
    # TeX tries name.tex before name
    for candidate in ((name,) if name.lower().endswith(".tex") else (name + ".tex", name)):
        path = root / candidate
        real = os.path.realpath(path)
        if not (real == real_root or real.startswith(real_root + os.sep)):
            return None, "resolves outside the project folder; not read"
        if os.path.isfile(real):
            return Path(real), ""
    return None, "file not found"


def _expand(path: Path, root: Path, stack: list[Path], problems: list[str], budget: list[int]) -> str:
    budget[0] -= path.stat().st_size
    if budget[0] < 0:  # checked before reading: a 1 GB "paper" is not loaded into memory
        problems.append(f"project larger than {MAX_PROJECT_BYTES} bytes; stopped reading at {path.name}")
        return ""
    text = strip_hidden(strip_comments(_read_tex(path)))

    def replace(m: re.Match) -> str:
        name = m.group(2) if m.group(2) is not None else m.group(3)
        where = path.relative_to(root) if path.is_relative_to(root) else path.name
        target, why = _resolve_input(root, name)
        if target is None:
            problems.append(f"\\{m.group(1)}{{{name}}} in {where}: {why}")
            return ""
        if target in stack:
            problems.append(f"\\{m.group(1)}{{{name}}} in {where}: input cycle, not expanded again")
            return ""
        if len(stack) >= MAX_INPUT_DEPTH:
            problems.append(f"\\{m.group(1)}{{{name}}} in {where}: nested deeper than {MAX_INPUT_DEPTH}")
            return ""
        inner = _expand(target, root, stack + [target], problems, budget)
        # a \subfile (or stray standalone file) carries its own preamble: keep only its body
        begin = _BEGIN_DOC.search(inner)
        if begin and re.search(r"\\documentclass\b", inner[: begin.start()]):
            inner = inner[begin.end():]
            end = _END_DOC.search(inner)
            inner = inner[: end.start()] if end else inner
        return "\n" + inner + "\n"

    return _INPUT.sub(replace, text)


def load_latex_project(path: Path) -> LatexDocument:
    """Read a LaTeX paper from a .tex file or a project folder (main file found by `find_main_tex`).

    `\\input`/`\\include`/`\\subfile` are followed relative to the main file's folder, never outside it;
    refused, missing and cyclic inputs are listed in `problems`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"LaTeX file or folder not found: {path}")
    main = find_main_tex(path) if path.is_dir() else path
    root = Path(os.path.realpath(main.parent))
    main = Path(os.path.realpath(main))
    problems: list[str] = []
    source = _expand(main, root, [main], problems, [MAX_PROJECT_BYTES])
    doc = parse_latex(source)
    doc.problems = problems + doc.problems
    return doc
