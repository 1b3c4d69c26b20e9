"""Shared, tolerant reading of model text: headers of any shape, score numbers, fenced blocks, lenient JSON.

Models write `## Rating`, `### Rating`, `**Rating:** 6`, `Rating: 6/10` or a bare `Rating` line. These helpers
turn such text into (field, content) pieces that the paper and review parsers assemble. No markdown library
fits: they parse documents, whereas we need to recognise a fixed vocabulary of field names in any dress.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import LimitExceeded
from ..limits import check_json_depth

_MD_HEADER = re.compile(r"^\s{0,3}#{1,6}\s*(?P<title>.+?)\s*#*\s*$")
_BOLD_HEADER = re.compile(r"^\s{0,3}(?P<mark>\*\*|__)(?P<title>[^*_]{1,80}?)(?P=mark)\s*(?P<rest>.*)$")
_PLAIN_HEADER = re.compile(r"^\s{0,3}(?P<title>[A-Za-z][A-Za-z _\-/&#0-9]{0,60}?)\s*:\s*(?P<rest>.*)$")
_BARE_HEADER = re.compile(r"^\s{0,3}(?P<title>[A-Za-z][A-Za-z _\-/&#0-9]{0,60}?)\s*:?\s*$")
# an exponent is part of the number: "1e309" is not a 1 (it is infinity, and refused)
_NUMBER = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\d])")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*([\w+-]*)\s*$")


def field_key(title: str) -> str:
    """Normalised header name: letters only, lower case ("Experimental_results" -> "experimentalresults")."""
    return re.sub(r"[^a-z]", "", title.lower())


@dataclass
class HeaderLine:
    key: str  # normalised name (see field_key), before alias lookup
    title: str  # as written
    rest: str  # text on the same line after the header ("6" in "Rating: 6")
    markup: str  # "markdown" | "bold" | "plain" | "bare"


def read_header(line: str, known: set[str]) -> Optional[HeaderLine]:
    """The header on this line if its name (normalised) is in `known`, else None.

    Markdown and bold headers with an unknown name are not headers for us: they belong to the text.
    """
    if len(line) > 200:
        return None
    for markup, pattern in (("markdown", _MD_HEADER), ("bold", _BOLD_HEADER), ("plain", _PLAIN_HEADER),
                            ("bare", _BARE_HEADER)):
        m = pattern.match(line)
        if not m:
            continue
        title = m.group("title").strip().strip("*_").strip()
        rest = m.groupdict().get("rest") or ""
        if markup == "markdown" and ":" in title:
            title, _, rest = title.partition(":")
        title = title.strip().rstrip(":").strip("*_ ")
        rest = rest.strip().lstrip(":").strip().strip("*_").strip()
        key = field_key(title)
        if key in known:
            return HeaderLine(key=key, title=title, rest=rest, markup=markup)
        if markup in ("markdown", "bold"):
            return None
    return None


def first_number(text: str) -> Optional[float]:
    m = _NUMBER.search(text)
    return float(m.group(1)) if m else None


def parse_score(text: str, low: int, high: int, name: str,
                words: Optional[dict[str, int]] = None) -> tuple[Optional[int], Optional[str]]:
    """An integer score from text such as "6", "6: marginally above", "6/10", "Rating: 6", "3 good".

    Returns (score, problem). Out-of-range or non-integer values are problems and give None: a score is
    never clamped or rounded into range silently.
    """
    text = text.strip()
    if not text:
        return None, f"{name}: missing score"
    # Skip a repeated label ("Rating: 6") so that digits in it are not read.
    text = re.sub(r"^[A-Za-z ]{1,30}:\s*", "", text) if not text[0].isdigit() else text
    value = first_number(text[:200])
    if value is None and words:
        lowered = text.lower()
        for word, score in words.items():
            if re.search(rf"\b{re.escape(word)}\b", lowered):
                value = float(score)
                break
    if value is None:
        return None, f"{name}: no number in {text[:40]!r}"
    if not math.isfinite(value):
        return None, f"{name}: {text[:40]!r} is not a finite number"
    if value != int(value):
        return None, f"{name}: {value:g} is not a whole number"
    if not low <= value <= high:
        return None, f"{name}: {value:g} outside {low}-{high}"
    return int(value), None


@dataclass
class Block:
    lang: str  # "latex", "json", "" ...
    body: str
    start: int  # line index of the opening fence
    end: int  # line index after the closing fence (len(lines) when unterminated)
    closed: bool


def fenced_blocks(lines: list[str]) -> list[Block]:
    """Fenced code blocks in order. An unterminated fence (truncated output) runs to the end."""
    blocks = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence) and not close.group(2):
                break
            j += 1
        closed = j < len(lines)
        blocks.append(Block(lang=lang, body="\n".join(lines[i + 1:j]), start=i, end=j + 1 if closed else j,
                            closed=closed))
        i = j + 1
    return blocks


def _strip_json_comments(text: str) -> str:
    out, i, in_string = [], 0, False
    while i < len(text):
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _close_truncated(text: str) -> Optional[str]:
    """Cut truncated JSON back to its last complete element and close the open brackets."""
    stack, in_string, escape, last_ok = [], False, False, None
    for i, c in enumerate(text):
        if in_string:
            if escape:
                escape = False
            elif c == "\\":
                escape = True
            elif c == '"':
                in_string = False
            continue
        if c == '"':
            in_string = True
        elif c in "[{":
            stack.append(c)
        elif c in "]}":
            if not stack:
                return None
            stack.pop()
            if stack:
                last_ok = (i, list(stack))
    if not stack or last_ok is None:
        return None
    i, open_stack = last_ok
    closing = "".join("]" if b == "[" else "}" for b in reversed(open_stack))
    return text[: i + 1] + closing


def loads_lenient(text: str) -> tuple[Any, list[str]]:
    """JSON as models write it: trailing commas, comments, Python literals, cut off mid-list.

    Returns (value or None, problems); never raises: JSON nested deeper than limits.MAX_JSON_DEPTH, numbers
    with thousands of digits and other unreadable values are problems.
    """
    text = text.strip()
    if not text:
        return None, ["empty JSON"]
    start = min((p for p in (text.find("["), text.find("{")) if p >= 0), default=-1)
    if start < 0:
        return None, ["no JSON value found"]
    text = text[start:]
    try:
        check_json_depth(text, "JSON")
    except LimitExceeded as exc:
        return None, [str(exc)]
    try:
        return json.JSONDecoder().raw_decode(text)[0], []
    except (ValueError, RecursionError):  # JSONDecodeError, or a number past the int digit limit
        pass
    cleaned = re.sub(r",\s*([\]}])", r"\1", _strip_json_comments(text))
    try:
        return json.JSONDecoder().raw_decode(cleaned)[0], ["JSON needed repair (comments or trailing commas)"]
    except (ValueError, RecursionError):
        pass
    try:
        value = ast.literal_eval(cleaned)
        if isinstance(value, (list, dict)):
            return value, ["JSON written as a Python literal"]
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    closed = _close_truncated(cleaned)
    if closed is not None:
        try:
            return json.loads(re.sub(r",\s*([\]}])", r"\1", closed)), ["JSON was cut off; kept the complete part"]
        except (ValueError, RecursionError):
            pass
    return None, ["JSON could not be parsed"]


def as_text(value: str | bytes) -> str:
    """Model output as text: bytes decoded leniently, NULs and carriage returns removed."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
