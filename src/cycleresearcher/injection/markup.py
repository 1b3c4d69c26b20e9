"""Text hidden by markup, for the injection finder: LaTeX white, microscopic, invisible and commented-out text,
and hidden HTML in markdown.

White is resolved the way xcolor would: named colours, `\\definecolor` / `\\colorlet` aliases (in file order),
the rgb, RGB, HTML, gray, Gray and cmyk models, and mixes such as `white!100`, `red!0` or `black!0!white`.
White text set on a coloured background (`\\cellcolor`, `\\colorbox`, `fill=`) is legitimate and skipped.
Every scan is one regex pass with bounded lookaround, so a hostile source cannot make it slow.
"""

from __future__ import annotations

import re
from typing import Iterator, Optional

from ..formats.latex_text import latex_to_plain
from .patterns import INSTRUCTION, PRAISE

RGB = tuple[float, float, float]
_WHITE = 0.97  # every channel at or above this is white on a white page
_NAMED: dict[str, RGB] = {
    "white": (1, 1, 1), "black": (0, 0, 0), "red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1),
    "cyan": (0, 1, 1), "magenta": (1, 0, 1), "yellow": (1, 1, 0), "gray": (.5, .5, .5), "grey": (.5, .5, .5),
    "lightgray": (.75, .75, .75), "darkgray": (.25, .25, .25), "brown": (.75, .5, .25), "orange": (1, .5, 0),
    "purple": (.75, 0, .25), "pink": (1, .75, .75), "teal": (0, .5, .5), "olive": (.5, .5, 0),
    "violet": (.5, 0, .5), "lime": (.75, 1, 0), "snow": (1, .98, .98), "ivory": (1, 1, .94),
    "ghostwhite": (.97, .97, 1), "whitesmoke": (.96, .96, .96),
}
_DEFINE = re.compile(r"\\(?:definecolor|providecolor|colorlet)\s*(?:\[[^\]\n]{0,20}\])?\s*\{\s*([^{}\s]{1,60})\s*\}"
                     r"\s*(?:\{\s*([A-Za-z]{1,10})\s*\}\s*\{([^{}]{0,80})\}|\{([^{}]{0,80})\})")
_USE = re.compile(r"\\(textcolor|color)\s*(?:\[\s*([A-Za-z]{1,10})\s*\])?\s*\{([^{}]{0,80})\}")
_BACKGROUND = re.compile(r"\\(?:cellcolor|rowcolor|colorbox|fcolorbox|pagecolor)\b|fill\s*=|bg\s*=|background", re.I)
_TINY = re.compile(r"\\tiny\b")
_FONTSIZE = re.compile(r"\\fontsize\s*\{\s*(\d*\.?\d+)\s*(pt|bp|px|mm)?\s*\}")
_SCALE = re.compile(r"\\(?:scalebox|resizebox\*?)\s*\{\s*(\d*\.?\d+)\s*(?:pt|bp|mm|cm|\\(?:text|line|column)width)?"
                    r"\s*\}")
_PHANTOM = re.compile(r"\\[hv]?phantom\s*\{")
_COMMENT = re.compile(r"(?<!\\)%([^\n]*)")
_IFFALSE = re.compile(r"\\iffalse\b(.{0,5000}?)(?:\\fi\b|$)", re.S)
_COMMENT_ENV = re.compile(r"\\begin\s*\{comment\}(.{0,5000}?)(?:\\end\s*\{comment\}|$)", re.S)
_HTML_COMMENT = re.compile(r"<!--(.{0,3000}?)-->", re.S)
_HTML_HIDDEN = re.compile(
    r"<(span|div|p|font)\b[^>]{0,300}?(?:color\s*[:=]\s*[\"']?\s*(?:white|#fff(?:fff)?\b|rgb\(\s*255\s*,\s*255\s*,"
    r"\s*255\s*\))|font-size\s*:\s*0|display\s*:\s*none|visibility\s*:\s*hidden|opacity\s*:\s*0(?:\.0+)?\b|\bhidden\b)"
    r"[^>]{0,300}>(.{0,3000}?)</\1>", re.S | re.I)
_WINDOW = 2000  # characters a colour or size switch is followed to find the end of its group


def suspicious_hidden(text: str, min_words: int = 8) -> bool:
    """Hidden text worth a flag: an instruction, praise or review words, or a long run of words."""
    flat = " ".join(text.split())
    return bool(INSTRUCTION.search(flat) or PRAISE.search(flat)) or len(flat.split()) >= min_words


def _flat(text: str) -> str:
    return " ".join(text.split())[:160]


# ---------------------------------------------------------------------------------------------- colours


def _parse(model: Optional[str], spec: str, names: dict[str, RGB]) -> Optional[RGB]:
    """The colour a model and spec (or an xcolor expression, when model is None) describe, or None."""
    spec = spec.strip()
    try:
        if model is None or model.lower() == "named":
            return _expression(spec, names)
        values = [float(v) for v in re.split(r"\s*[,\s]\s*", spec) if v] if model not in ("HTML",) else []
        if model == "rgb" and len(values) == 3:
            return values[0], values[1], values[2]
        if model == "RGB" and len(values) == 3:
            return values[0] / 255, values[1] / 255, values[2] / 255
        if model == "HTML" and re.fullmatch(r"[0-9A-Fa-f]{6}", spec):
            return int(spec[0:2], 16) / 255, int(spec[2:4], 16) / 255, int(spec[4:6], 16) / 255
        if model == "gray" and len(values) == 1:
            return values[0], values[0], values[0]
        if model == "Gray" and len(values) == 1:
            return values[0] / 15, values[0] / 15, values[0] / 15
        if model.lower() == "cmyk" and len(values) == 4:
            c, m, y, k = (v / 100 if model == "CMYK" else v for v in values)
            return (1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)
    except (ValueError, OverflowError):
        return None
    return None


def _expression(expr: str, names: dict[str, RGB]) -> Optional[RGB]:
    """xcolor's `c1!p1!c2!p2!c3`: p1% of c1 mixed with c2 (white when absent), and so on."""
    parts = [p.strip() for p in expr.split("!")]
    colour = names.get(parts[0].lower()) or _NAMED.get(parts[0].lower())
    if colour is None or len(parts) > 9:
        return None
    i = 1
    while i < len(parts):
        try:
            share = min(max(float(parts[i]), 0.0), 100.0) / 100
        except ValueError:
            return None
        other_name = parts[i + 1].lower() if i + 1 < len(parts) else "white"
        other = names.get(other_name) or _NAMED.get(other_name)
        if other is None:
            return None
        colour = tuple(share * a + (1 - share) * b for a, b in zip(colour, other))  # type: ignore[assignment]
        i += 2
    return colour


def _is_white(colour: Optional[RGB]) -> bool:
    return colour is not None and all(c >= _WHITE for c in colour)


def _group_rest(source: str, start: int) -> str:
    """Text from `start` to the `}` that closes the group `start` is in (or _WINDOW characters)."""
    depth, end = 0, min(len(source), start + _WINDOW)
    for i in range(start, end):
        c = source[i]
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return source[start:i]
            depth -= 1
    return source[start:end]


def _argument(source: str, start: int) -> str:
    """The `{...}` argument opening at `start` (after spaces), within _WINDOW characters."""
    m = re.compile(r"\s*\{").match(source, start)
    return _group_rest(source, m.end()) if m else ""


def _text_of(latex: str) -> str:
    return latex_to_plain(latex)


# ---------------------------------------------------------------------------------------------- LaTeX


def hidden_latex(source: str) -> Iterator[tuple[str, str]]:
    """(kind, excerpt) for each suspicious hidden place in a LaTeX source (comments included)."""
    for m in _COMMENT.finditer(source):
        comment = m.group(1)
        if INSTRUCTION.search(" ".join(comment.split())) or (PRAISE.search(comment) and len(comment.split()) >= 3):
            yield "instruction in LaTeX comment", _flat(comment)
    for pattern, kind in ((_IFFALSE, "text in an \\iffalse block"), (_COMMENT_ENV, "text in a comment environment")):
        for m in pattern.finditer(source):
            if suspicious_hidden(m.group(1), min_words=10 ** 6):
                yield kind, _flat(_text_of(m.group(1)))
    code = _COMMENT.sub("", source)
    yield from _white(code)
    for m in _TINY.finditer(code):
        content = _text_of(_group_rest(code, m.end()))
        if INSTRUCTION.search(" ".join(content.split())) or PRAISE.search(content):
            yield "microscopic text", _flat(content)
    for m in _FONTSIZE.finditer(code):
        size = float(m.group(1)) * (2.845 if m.group(2) == "mm" else 1.0)  # points
        if size < 3.0:
            content = _text_of(_group_rest(code, m.end()))
            if content.strip():
                yield "microscopic text", _flat(content)
    for m in _SCALE.finditer(code):
        if float(m.group(1)) < 0.2:
            rest = code[m.end():]
            content = _text_of(_group_rest(code, m.end() + 1) if rest.lstrip().startswith("{") else rest[:300])
            if suspicious_hidden(content, min_words=3):
                yield "scaled-away text", _flat(content)
    for m in _PHANTOM.finditer(code):
        content = _text_of(_group_rest(code, m.end()))
        if suspicious_hidden(content, min_words=4):
            yield "invisible text", _flat(content)


def _white(code: str) -> Iterator[tuple[str, str]]:
    names: dict[str, RGB] = {}
    definitions = [(m.start(), m) for m in _DEFINE.finditer(code)]
    uses = list(_USE.finditer(code))
    events = sorted([(pos, "def", m) for pos, m in definitions] + [(m.start(), "use", m) for m in uses],
                    key=lambda e: e[0])
    for pos, what, m in events:
        if what == "def":
            name, model, spec, expr = m.group(1), m.group(2), m.group(3), m.group(4)
            colour = _parse(model, spec, names) if model else _parse(None, expr or "", names)
            if colour is not None:
                names[name.lower()] = colour
            continue
        command, model, spec = m.group(1), m.group(2), m.group(3)
        if not _is_white(_parse(model, spec, names)):
            continue
        if _BACKGROUND.search(code[max(0, pos - 150): pos]):
            continue  # white on a coloured cell or box: visible
        latex = _argument(code, m.end()) if command == "textcolor" else _group_rest(code, m.end())
        content = _text_of(latex)
        if suspicious_hidden(content, min_words=4):
            yield "white text", _flat(content)


# ---------------------------------------------------------------------------------------------- HTML


def hidden_html(text: str) -> Iterator[tuple[str, str]]:
    """(kind, excerpt) for HTML comments with an instruction or praise, and text styled invisible."""
    if "<" not in text:
        return
    for m in _HTML_COMMENT.finditer(text):
        if suspicious_hidden(m.group(1), min_words=10 ** 6):
            yield "instruction in HTML comment", _flat(m.group(1))
    for m in _HTML_HIDDEN.finditer(text):
        if suspicious_hidden(m.group(2), min_words=4):
            yield "hidden HTML text", _flat(re.sub(r"<[^>]{0,200}>", " ", m.group(2)))
