"""LaTeX -> plain text in one left-to-right pass: time linear in the input, no recursion, never raises.

pylatexenc (which we used before) builds a node tree one character-class token at a time: correct, but about
10 microseconds a character, so a 1 MB paper took 5-25 s and a 10 MB one-line file minutes. Here a single
regex tokenizer walks the source once; each `{` knows its matching `}` from one stack pass (`brace_map`), so
skipping a macro's arguments is a jump, never a rescan. pylatexenc still supplies its table of ~800 symbol
macros (`\\alpha` -> α), read once.

What it keeps: prose, headings (on lines of their own), math with its `$` delimiters (symbols as Unicode),
citations as already rendered by the caller, footnotes in brackets, table cells. What it drops: preamble
commands, labels, graphics, colours, lengths, drawing environments (tikz), comments.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from functools import lru_cache
from typing import Optional

_BRACE = re.compile(r"\\.|[{}]", re.S)
_TOKEN = re.compile(r"""
    \\(?P<word>[a-zA-Z@]+)\*?      # control word, with an optional star
  | \\(?P<sym>.)                  # control symbol (\%, \\, \', ...)
  | (?P<brace>[{}])
  | (?P<math>\$\$?)
  | (?P<comment>%[^\n]*\n?[ \t]*)
  | (?P<dash>---?)
  | (?P<quote>``|'')
  | (?P<tie>~)
  | (?P<amp>&)
  | (?P<text>[^\\{}$%~&`'-]+)
  | (?P<other>.)
""", re.S | re.X)
_OPTIONAL_MAX = 2_000  # characters searched for the `]` of an optional argument
_CONTROL_SEQUENCE = re.compile(r"\\(?:[a-zA-Z@]+|.)", re.S)

# argument shapes: "[" optional, "{" mandatory; actions below say what becomes of them
_DROP = {  # macros dropped with their arguments
    "label": "{", "bibliographystyle": "{", "bibliography": "{", "nocite": "{", "usepackage": "[{",
    "RequirePackage": "[{", "documentclass": "[{", "includegraphics": "[{", "input": "{", "include": "{",
    "newcommand": "{[[{", "renewcommand": "{[[{", "providecommand": "{[[{", "newenvironment": "{[[{{",
    "renewenvironment": "{[[{{", "DeclareMathOperator": "{{", "newtheorem": "{[{[", "setlength": "{{",
    "addtolength": "{{", "setcounter": "{{", "addtocounter": "{{", "thanks": "{", "date": "{",
    "pagestyle": "{", "thispagestyle": "{", "hypersetup": "{", "graphicspath": "{", "definecolor": "[{{{",
    "colorlet": "[{{", "color": "[{", "pagecolor": "[{", "hspace": "{", "vspace": "{", "vskip": "",
    "hskip": "", "newpage": "", "clearpage": "", "noindent": "", "centering": "", "small": "", "footnotesize": "",
    "scriptsize": "", "tiny": "", "large": "", "Large": "", "LARGE": "", "huge": "", "Huge": "",
    "normalsize": "", "bfseries": "", "itshape": "", "ttfamily": "", "rmfamily": "", "sffamily": "",
    "mdseries": "", "upshape": "", "scshape": "", "selectfont": "", "fontsize": "{{", "linewidth": "",
    "textwidth": "", "columnwidth": "", "hline": "", "toprule": "", "midrule": "", "bottomrule": "",
    "cline": "{", "cmidrule": "[{", "multicolumn": "{{", "multirow": "{{", "resizebox": "{{", "scalebox": "{",
    "rowcolor": "[{", "cellcolor": "[{", "vfill": "", "hfill": "", "protect": "", "relax": "",
    "appendix": "", "tableofcontents": "", "bibitem": "[{", "newblock": "", "affiliation": "{", "email": "{",
    "address": "{", "keywords": "{", "icmlauthor": "{{", "icmlaffiliation": "{{", "icmlkeywords": "{",
    "icmlcorrespondingauthor": "{{", "icmltitlerunning": "{", "runningtitle": "{", "shorttitle": "{",
    "printbibliography": "[", "addbibresource": "[{", "maketitle": "",
}
_HEADINGS = {"part", "chapter", "section", "subsection", "subsubsection", "paragraph", "subparagraph"}
_REFS = {"ref": "<ref>", "autoref": "<ref>", "cref": "<ref>", "Cref": "<Ref>", "pageref": "<ref>",
         "eqref": "(<ref>)", "nameref": "<ref>"}
_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
            ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328",
            "r": "\u030a", "d": "\u0323", "b": "\u0331"}
_CONTROL_SYMBOLS = {"%": "%", "&": "&", "_": "_", "#": "#", "$": "$", "{": "{", "}": "}", ",": " ", ";": " ",
                    ":": " ", " ": " ", "\n": " ", "\t": " ", "!": "", "-": "", "/": "", "@": "", "|": "‖",
                    "\\": "\n"}
_EXTRA_SYMBOLS = {"LaTeX": "LaTeX", "TeX": "TeX", "LaTeXe": "LaTeX2e", "BibTeX": "BibTeX", "and": " and ",
                  "today": "", "etal": "et al.", "eg": "e.g.", "ie": "i.e.", "etc": "etc."}
_MATH_ENVS = {"equation", "equation*", "align", "align*", "gather", "gather*", "multline", "multline*",
              "eqnarray", "eqnarray*", "displaymath", "math", "flalign", "flalign*", "alignat", "alignat*",
              "dmath", "dmath*"}
_RAW_ENVS = {"verbatim", "verbatim*", "Verbatim", "lstlisting", "minted", "alltt", "comment", "spverbatim"}
_SKIP_ENVS = {"tikzpicture", "pgfpicture", "picture", "axis", "filecontents", "filecontents*"}
_ENV_ARGS = {"tabular": "[{", "tabular*": "{[{", "tabularx": "{{", "tabulary": "{{", "array": "[{",
             "longtable": "[{", "figure": "[", "figure*": "[", "table": "[", "table*": "[", "wrapfigure": "[{[{",
             "wraptable": "[{[{", "minipage": "[[[{", "subfigure": "[{", "multicols": "{", "thebibliography": "{",
             "alignat": "{", "alignat*": "{", "itemize": "[", "enumerate": "[", "description": "["}


@lru_cache(maxsize=1)
def _symbols() -> dict[str, str]:
    """pylatexenc's symbol macros without arguments (\\alpha -> α, \\ldots -> …), read once."""
    try:
        from pylatexenc.latex2text import get_default_latex_context_db as text_db
        from pylatexenc.latexwalker import get_default_latex_context_db as walker_db
    except ImportError:  # the table is a nicety; the text stays readable without it
        return {}
    walker = walker_db()
    out = {}
    for spec in text_db().iter_macro_specs():
        repl = spec.simplify_repl
        if not isinstance(repl, str) or "%" in repl:
            continue
        args = getattr(getattr(walker.get_macro_spec(spec.macroname), "args_parser", None), "argspec", "")
        if not args:
            out[spec.macroname] = repl
    out.update(_EXTRA_SYMBOLS)
    return out


def strip_comments(source: str) -> str:
    """Remove `%` comments (not `\\%`); a line that held only a comment disappears with its newline.

    Linear time: each `%` looks back only over the backslashes right before it.
    """
    out = []
    for line in source.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        cut = _comment_start(body)
        if cut < 0:
            out.append(line)
            continue
        stripped = body[:cut]
        if not stripped.strip():
            continue  # a comment-only line: dropping it keeps paragraphs together, as TeX does
        out.append(stripped + ("\n" if line.endswith(("\n", "\r")) else ""))
    return "".join(out)


def _comment_start(line: str) -> int:
    """Index of the `%` that starts a comment on this line, or -1 (a `%` after an odd run of `\\` is text)."""
    i = line.find("%")
    while i != -1:
        k = i
        while k > 0 and line[k - 1] == "\\":
            k -= 1
        if (i - k) % 2 == 0:
            return i
        i = line.find("%", i + 1)
    return -1


@lru_cache(maxsize=16)
def brace_map(source: str) -> dict[int, int]:
    """{index of each `{`: index of its matching `}`, or -1 when it never closes}; escaped braces skipped."""
    match: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(source):
        c = m.group()
        if c == "{":
            stack.append(m.start())
            match[m.start()] = -1
        elif c == "}" and stack:
            match[stack.pop()] = m.start()
    return match


@lru_cache(maxsize=16)
def _newlines(source: str) -> list[int]:
    return [m.start() for m in re.finditer("\n", source)]


def group_end(source: str, start: int) -> int:
    """Index of the `}` closing the `{` at `start`; an unclosed group ends at the end of its line (or text)."""
    close = brace_map(source).get(start, -1)
    if close >= 0:
        return close
    lines = _newlines(source)
    k = bisect.bisect_right(lines, start)
    return lines[k] if k < len(lines) else len(source)


def skip_spaces(source: str, i: int) -> int:
    n = len(source)
    while i < n and source[i] in " \t\n":
        i += 1
    return i


def skip_optional(source: str, i: int) -> int:
    """Index after a `[...]` at i (spaces first), or i when there is none within _OPTIONAL_MAX characters."""
    j = skip_spaces(source, i)
    if j < len(source) and source[j] == "[":
        close = source.find("]", j, j + _OPTIONAL_MAX)
        if close != -1:
            return close + 1
    return i


def skip_args(source: str, i: int, shape: str) -> int:
    """Index after the arguments `shape` describes ("[" optional, "{" mandatory) starting at i."""
    for kind in shape:
        if kind == "[":
            i = skip_optional(source, i)
            continue
        j = skip_spaces(source, i)
        if j >= len(source):
            return j
        if source[j] == "{":
            end = group_end(source, j)
            i = end + 1 if end < len(source) and source[end] == "}" else end
        elif source[j] == "\\":  # a single control sequence is an argument in TeX
            m = _CONTROL_SEQUENCE.match(source, j)
            i = m.end() if m else j + 1
        elif source[j] not in "}[":
            i = j + 1
        else:
            return j
    return i


def _env_name(source: str, i: int) -> tuple[Optional[str], int]:
    """(name, index after `{name}`) for the group at i, or (None, i)."""
    j = skip_spaces(source, i)
    if j < len(source) and source[j] == "{":
        close = source.find("}", j, j + 100)
        if close != -1:
            return source[j + 1: close].strip(), close + 1
    return None, i


def _accent(source: str, i: int, mark: str, out: list[str]) -> int:
    """Put the accented character for the accent at i; return where to continue."""
    j = skip_spaces(source, i) if source[i - 1].isalpha() else i  # \c c needs a space, \'e does not
    if j < len(source) and source[j] == "{":
        k = skip_spaces(source, j + 1)
        if k < len(source) and source[k] not in "{}\\":
            out.append(unicodedata.normalize("NFC", source[k] + mark))
            return k + 1  # the rest of the group and its `}` stream on
        return j
    if j < len(source) and source[j] not in "{}\\ \n":
        out.append(unicodedata.normalize("NFC", source[j] + mark))
        return j + 1
    return j


def latex_to_plain(source: str, _inner: bool = False) -> str:
    """Plain text of LaTeX (see the module docstring). Linear time; never raises on any string.

    `_inner` marks a title or author argument converted on its own: one level only, never recursing again.
    """
    symbols = _symbols()
    out: list[str] = []
    on_close: dict[int, str] = {}  # index of a `}` -> text to put when we reach it
    title: list[str] = []
    n = len(source)
    i = 0
    while i < n:
        m = _TOKEN.match(source, i)
        i = m.end()
        kind = m.lastgroup
        if kind == "text":
            out.append(m.group())
        elif kind == "brace":
            if m.group() == "}":
                out.append(on_close.pop(m.start(), ""))
        elif kind == "word":
            i = _macro(source, m.group("word"), i, out, on_close, symbols, None if _inner else title)
        elif kind == "sym":
            c = m.group("sym")
            if c in _ACCENTS and c not in "\\":
                i = _accent(source, i, _ACCENTS[c], out)
            elif c == "\\":
                out.append("\n")
                i = skip_optional(source, i + 1 if i < n and source[i] == "*" else i)
            elif c in "()":
                out.append("$")
            elif c in "[]":
                out.append("$$")
            else:
                out.append(_CONTROL_SYMBOLS.get(c, c))
        elif kind == "math":
            out.append(m.group())
        elif kind == "dash":
            out.append("\u2013" if m.group() == "--" else "\u2014")
        elif kind == "quote":
            out.append("\u201c" if m.group() == "``" else "\u201d")
        elif kind in ("tie", "amp"):
            out.append(" ")
        elif kind == "comment":
            pass
        else:
            out.append(m.group())
    return "".join(out)


def _macro(source: str, name: str, i: int, out: list[str], on_close: dict[int, str], symbols: dict[str, str],
           title: Optional[list[str]]) -> int:
    """Handle the control word `name` whose token ends at i; return where to continue."""
    if name in _DROP:
        if name == "maketitle" and title:
            out.append("\n".join(title) + "\n\n")
        return skip_args(source, i, _DROP[name])
    if name in _HEADINGS:
        j = skip_spaces(source, skip_optional(source, i))
        out.append("\n\n")
        if j < len(source) and source[j] == "{":
            end = group_end(source, j)
            on_close[end] = "\n\n"
            return j + 1
        return i
    if name in ("title", "author") and title is not None:
        j = skip_spaces(source, skip_optional(source, i))
        if j < len(source) and source[j] == "{":
            end = group_end(source, j)
            text = " ".join(latex_to_plain(source[j + 1: end], _inner=True).split())
            if text:
                title.append(text)
            return end + 1
        return i
    if name in _REFS:
        out.append(_REFS[name])
        return skip_args(source, i, "{")
    if name in ("begin", "end"):
        return _environment(source, name, i, out)
    if name in ("textcolor", "colorbox"):
        return skip_args(source, i, "[{")  # the coloured text streams on
    if name == "fcolorbox":
        return skip_args(source, i, "[{[{")
    if name in ("href",):
        return skip_args(source, i, "{")
    if name in ("url", "path"):
        j = skip_spaces(source, i)
        if j < len(source) and source[j] == "{":
            end = group_end(source, j)
            out.append(source[j + 1: end])
            return end + 1
        return i
    if name == "verb" and i < len(source):
        delim = source[i]
        end = source.find(delim, i + 1, i + 10_000)
        if end != -1 and delim not in " \n*{":
            out.append(source[i + 1: end])
            return end + 1
        return i
    if name == "footnote":
        j = skip_spaces(source, skip_optional(source, i))
        if j < len(source) and source[j] == "{":
            out.append(" [")
            on_close[group_end(source, j)] = "]"
            return j + 1
        return i
    if name in ("frac", "dfrac", "tfrac", "nicefrac"):
        j = skip_spaces(source, i)
        if j < len(source) and source[j] == "{":
            on_close[group_end(source, j)] = "/"
        return i
    if name == "sqrt":
        j = skip_spaces(source, skip_optional(source, i))
        if j < len(source) and source[j] == "{":
            out.append("\u221a(")
            on_close[group_end(source, j)] = ")"
            return j + 1
        return i
    if name == "item":
        out.append("\n- ")
        return skip_optional(source, i)
    if name in ("par",):
        out.append("\n\n")
        return i
    if len(name) == 1 and name in _ACCENTS:
        return _accent(source, i, _ACCENTS[name], out)
    if name in symbols:
        out.append(symbols[name])
    return i  # unknown macros vanish; their arguments stay as text


def _environment(source: str, which: str, i: int, out: list[str]) -> int:
    name, after = _env_name(source, i)
    if name is None:
        return i
    if which == "end":
        out.append("$$" if name in _MATH_ENVS else "\n")
        return after
    if name in _RAW_ENVS or name in _SKIP_ENVS:
        end = re.compile(r"\\end\s*\{" + re.escape(name) + r"\}").search(source, after)
        stop = end.start() if end else len(source)
        if name in _RAW_ENVS and name != "comment":
            out.append("\n" + source[after: stop] + "\n")
        return end.end() if end else stop
    if name in _MATH_ENVS:
        out.append("$$")
        return skip_args(source, after, _ENV_ARGS.get(name, ""))
    out.append("\n")
    return skip_args(source, after, _ENV_ARGS.get(name, ""))
