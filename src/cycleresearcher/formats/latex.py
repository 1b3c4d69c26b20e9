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

from .. import limits
from ..limits import MAX_INPUT_DEPTH, MAX_INPUTS, MAX_PROJECT_BYTES  # noqa: F401  (re-exported)
from ..schema import Section
from .archive import find_main_tex
from .latex_text import group_end, latex_to_plain, skip_optional, skip_spaces, strip_comments  # noqa: F401

log = logging.getLogger(__name__)

_INPUT = re.compile(r"\\(input|include|subfile)\s*(?:\{([^{}]*)\}|\s([^\s{}\\%]+))")
_CITE = re.compile(
    r"\\(?:[cC]ite[a-zA-Z]*|[pP]arencite|[tT]extcite|[aA]utocite|[fF]ootcite|[sS]martcite|[sS]upercite|"
    r"fullcite|nocite)\*?\s*(?:\[[^\[\]{}]*\]\s*){0,2}\{([^{}]*)\}")
_IFFALSE = re.compile(r"\\iffalse\b.*?(?:\\fi\b|$)", re.S)
_COMMENT_ENV = re.compile(r"\\begin\s*\{comment\}.*?(?:\\end\s*\{comment\}|$)", re.S)
_BIB = re.compile(r"\\(?:bibliography|addbibresource|addglobalbib)\s*(?:\[[^\[\]{}]*\])?\s*\{([^{}]*)\}")
_SECTION = re.compile(r"\\section\*?\s*(?:\[[^\[\]{}]*\])?\s*\{")
_SUBSECTION = re.compile(r"\\subsection\*?\s*(?:\[[^\[\]{}]*\])?\s*\{")
_BEGIN_DOC = re.compile(r"\\begin\s*\{document\}")
_END_DOC = re.compile(r"\\end\s*\{document\}")
_ABSTRACT_ENV = re.compile(r"\\begin\s*\{abstract\}(.*?)(?:\\end\s*\{abstract\}|(?=\\section)|$)", re.S)
_BACK_MATTER = re.compile(
    r"\\begin\s*\{thebibliography\}.*?(?:\\end\s*\{thebibliography\}|$)|\\bibliographystyle\s*\{[^{}]*\}|"
    r"\\bibliography\s*\{[^{}]*\}|\\printbibliography\b(?:\[[^\[\]{}]*\])?", re.S)
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
    raw_source: str = ""  # every file as read, comments included ("" for parse_latex of a string)


# ---------------------------------------------------------------------------------------------- small helpers


def strip_hidden(source: str) -> str:
    """Remove text TeX never typesets: `\\iffalse ... \\fi` and `comment` environments.

    Such blocks are where instructions aimed at an LLM reviewer hide; pylatexenc would print them.
    """
    source = _IFFALSE.sub("", source)
    return _COMMENT_ENV.sub("", source)


def braced_argument(source: str, start: int) -> tuple[str, int]:
    """The text of the `{...}` group opening at or after `start` (skipping spaces and one `[...]`).

    Returns (content, index after the closing brace). An unclosed group ends at the end of its line, so one
    missing brace in a title does not swallow the paper. Returns ("", start) when no group opens there.
    Constant time per call after one linear pass over `source` (see latex_text.brace_map).
    """
    i = skip_spaces(source, skip_optional(source, start))
    if i >= len(source) or source[i] != "{":
        return "", start
    end = group_end(source, i)
    if end < len(source) and source[end] == "}":
        return source[i + 1: end], end + 1
    return source[i + 1: end], end


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
    """Collapse runs of blank lines and trailing spaces left by the conversion (each regex anchored at the
    start of a run, so a megabyte of spaces is one match, not a quadratic rescan)."""
    text = re.sub(r"(?<![ \t])[ \t]+\n", "\n", text)
    text = re.sub(r"\n[ \t]+(?=\S)", "\n", text)
    text = re.sub(r"(?<=\S)[ \t]{2,}", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------------------------------------- to text


def latex_to_text(source: str) -> str:
    """Plain text of a LaTeX snippet, math kept readable: `$α + x^2$`. Linear time; never raises."""
    # natbib/biblatex citations are rendered as [keys] before the conversion
    source = _CITE.sub(_render_cite, source)
    return _clean(latex_to_plain(source))


def _render_cite(m: re.Match) -> str:
    keys = [k.strip() for k in m.group(1).split(",") if k.strip() and k.strip() != "*"]
    return "" if m.group(0).startswith("\\nocite") or not keys else "[" + ", ".join(keys) + "]"


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

    citations: dict[str, None] = {}  # ordered and unique: a set lookup, not a list scan (100k keys)
    for m in _CITE.finditer(src):
        for key in m.group(1).split(","):
            key = key.strip()
            if key and key != "*":
                citations.setdefault(key)
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
    abstract = re.sub(r"(?<![ \t])[ \t]*(?<!\n)\n(?!\n)[ \t]*", " ", _clean(latex_to_text(abstract_tex)))

    front, pieces = _split_sections(body, _SECTION)
    if not pieces:  # a short paper or fragment may only use \subsection
        front, pieces = _split_sections(body, _SUBSECTION)
    sections = [Section(heading=_one_line(latex_to_text(h)), text=latex_to_text(c)) for h, c in pieces]
    if not sections:
        problems.append("no \\section headings")

    parts = [title, ("Abstract\n\n" + abstract) if abstract else "", latex_to_text(front)]
    parts += [f"{s.heading}\n\n{s.text}" for s in sections]
    text = _clean("\n\n".join(p for p in parts if p.strip()))
    return LatexDocument(title=title, abstract=abstract, sections=sections, citations=list(citations),
                         bibliography_files=bib_files, text=text, problems=problems, source=src)


# ---------------------------------------------------------------------------------------------- projects


@dataclass
class _Expansion:
    """What a project expansion has spent so far, against limits.MAX_PROJECT_BYTES and MAX_INPUTS."""

    root: Path
    main: Path
    problems: list[str] = field(default_factory=list)
    bytes_used: int = 0
    inputs: int = 0
    texts: dict[Path, str] = field(default_factory=dict)  # each file read once, however often it is input
    raw: dict[Path, str] = field(default_factory=dict)  # as read, comments included (for the injection check)
    resolved: dict[str, tuple[Optional[Path], str]] = field(default_factory=dict)  # input name -> _resolve_input

    def problem(self, text: str) -> None:
        # a file with a million refused \inputs must not become a million problem lines
        if len(self.problems) < 200:
            self.problems.append(text)
        elif len(self.problems) == 200:
            self.problems.append("more \\input problems not listed")

    def resolve(self, name: str) -> tuple[Optional[Path], str]:
        if name not in self.resolved:
            self.resolved[name] = _resolve_input(self.root, name)
        return self.resolved[name]

    def read(self, path: Path) -> str:
        if path not in self.texts:
            data = limits.read_bytes(path, "MAX_PROJECT_BYTES", "LaTeX file")
            text, _ = limits.decode_text(data, path)  # Latin-1 for old arXiv sources: every byte decodes
            text = text.replace("\x00", "")
            self.raw[path] = text
            self.texts[path] = strip_hidden(strip_comments(text))
        text = self.texts[path]
        # every expansion counts, so a file input twice by each of twenty files cannot multiply past the budget
        self.bytes_used += len(text)
        if self.bytes_used > MAX_PROJECT_BYTES:
            raise limits.exceeded(self.main, f"the LaTeX project (expanded at {path.name})", "MAX_PROJECT_BYTES")
        return text


def _resolve_input(root: Path, name: str) -> tuple[Optional[Path], str]:
    """(path, "") for an input inside `root`, or (None, why not)."""
    name = name.strip().strip('"')
    if not name:
        return None, "empty file name"
    if "\x00" in name:
        return None, "NUL byte in the file name"
    if os.path.isabs(name) or name.startswith("~") or re.match(r"^[A-Za-z]:", name):
        return None, "absolute path refused"
    # TeX tries name.tex before name
    for candidate in ((name,) if name.lower().endswith(".tex") else (name + ".tex", name)):
        path = root / candidate
        if not limits.is_inside(root, path):
            return None, "resolves outside the project folder; not read"
        real = os.path.realpath(path)
        if os.path.isfile(real):
            return Path(real), ""
        if os.path.exists(real):
            return None, "not a regular file; not read"
    return None, "file not found"


def _expand(path: Path, state: _Expansion, stack: list[Path]) -> str:
    text = state.read(path)
    root = state.root

    def replace(m: re.Match) -> str:
        name = m.group(2) if m.group(2) is not None else m.group(3)
        where = path.relative_to(root) if path.is_relative_to(root) else path.name
        target, why = state.resolve(name)
        if target is None:
            state.problem(f"\\{m.group(1)}{{{name}}} in {where}: {why}")
            return ""
        if target in stack:
            state.problem(f"\\{m.group(1)}{{{name}}} in {where}: input cycle, not expanded again")
            return ""
        if len(stack) >= MAX_INPUT_DEPTH:
            state.problem(f"\\{m.group(1)}{{{name}}} in {where}: nested deeper than {MAX_INPUT_DEPTH}")
            return ""
        state.inputs += 1
        if state.inputs > MAX_INPUTS:
            raise limits.exceeded(state.main, f"\\input/\\include expansions (at {where})", "MAX_INPUTS")
        inner = _expand(target, state, stack + [target])
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

    `\\input`/`\\include`/`\\subfile` are followed relative to the main file's folder, never outside it
    (symlinks included); refused, missing and cyclic inputs are listed in `problems`. A project past
    limits.MAX_PROJECT_BYTES (expanded) or limits.MAX_INPUTS expansions raises LimitExceeded; a FIFO or device
    raises InputError. `raw_source` holds every file read, comments included, for the injection check.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"LaTeX file or folder not found: {path}")
    main = find_main_tex(path) if path.is_dir() else path
    limits.check_regular_file(main, "LaTeX file")
    root = Path(os.path.realpath(main.parent))
    main = Path(os.path.realpath(main))
    state = _Expansion(root=root, main=main)
    source = _expand(main, state, [main])
    doc = parse_latex(source)
    doc.problems = state.problems + doc.problems
    doc.raw_source = "\n\n".join(state.raw.values())
    return doc
