"""Every limit on what a user (or a stranger's file) can make the readers do, in one place.

Papers, archives, BibTeX files, JSON records and folders come from people we do not know. Each limit below
bounds one way an input could make a reader hang, fill memory, or read outside the folder it was given; going
past one raises `errors.LimitExceeded` naming the file and the limit (by its name here), so a user knows what
to shrink and a developer knows what to raise. Ground floor: imports only `errors`.

    from cycleresearcher import limits
    data = limits.read_bytes(path, limits.MAX_TEXT_FILE_BYTES)       # refuses FIFOs, devices, huge files
    value = limits.loads_json(text, where=str(path))                # depth, digits and syntax -> InputError
    files = limits.confined_files(folder, (".tex", ".pdf"))         # no symlink leaves the folder
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import InputError, LimitExceeded

# ---------------------------------------------------------------------------------------------- the limits

MAX_TEXT_FILE_BYTES = 20_000_000  # one .tex/.md/.txt/.json/.bib file read into memory
MAX_PDF_BYTES = 200_000_000  # one PDF (scanned figures make real PDFs large; pages are bounded separately)
MAX_PROJECT_BYTES = 20_000_000  # a LaTeX project after \input expansion, every expansion counted
MAX_INPUT_DEPTH = 20  # nested \input/\include levels
MAX_INPUTS = 2_000  # \input/\include expansions in one project (a file input twice counts twice)
MAX_JSON_DEPTH = 200  # nesting of any JSON we read (records, reviews, a completion's setup block)
MAX_JSON_BYTES = 50_000_000  # one JSON document (a JSONL line, a record file, a calibration)
MAX_BIBTEX_VALUE_CHARS = 1_000_000  # one @string macro or field after `#` joins and macro expansion
MAX_PDF_PAGE_CONTENT_BYTES = 2_000_000  # decompressed content stream of one PDF page (dense text: ~50 KB)
MAX_PDF_PAGE_OPERATORS = 100_000  # content-stream operators of one PDF page
MAX_PDF_PAGE_SECONDS = 10.0  # extraction time of one page
MAX_PDF_SECONDS = 120.0  # extraction time of a whole PDF
MAX_ARCHIVE_BYTES = 200_000_000  # bytes extracted from one archive (declared and actual)
MAX_ARCHIVE_MEMBERS = 10_000  # members of one archive
MAX_FOLDER_FILES = 100_000  # files listed from one folder (a corpus, a detect folder, a LaTeX project)


def exceeded(where: object, what: str, limit_name: str) -> LimitExceeded:
    """The error for `where` going past the limit called `limit_name` (a constant of this module)."""
    value = globals()[limit_name]
    shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
    return LimitExceeded(f"{where}: {what} exceeds the limit of {shown} (cycleresearcher.limits.{limit_name})")


# ---------------------------------------------------------------------------------------------- files


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def check_regular_file(path: Path, what: str = "file") -> os.stat_result:
    """The stat of `path` if it is a regular file (a symlink the user named is followed).

    FileNotFoundError when missing; InputError for a FIFO, device, socket or folder: reading one would block
    forever (a FIFO) or never end (/dev/zero).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL in the name
        raise InputError(f"{what} {str(path)!r} cannot be read ({type(exc).__name__}: {exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: {_kind(st.st_mode)}, not a regular {what}; refused")
    return st


def read_bytes(path: Path, limit_name: str = "MAX_TEXT_FILE_BYTES", what: str = "file") -> bytes:
    """The bytes of a regular file no larger than the named limit (checked before and while reading)."""
    path = Path(path)
    st = check_regular_file(path, what)
    limit = globals()[limit_name]
    if st.st_size > limit:
        raise exceeded(path, f"{what} of {st.st_size:,} bytes", limit_name)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)  # the file may have grown since the stat
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({type(exc).__name__}: {exc.strerror or exc})") from None
    if len(data) > limit:
        raise exceeded(path, f"{what} (still growing)", limit_name)
    return data


def decode_text(data: bytes, where: object) -> tuple[str, list[str]]:
    """UTF-8 text (a BOM dropped); otherwise Latin-1, which decodes every byte, with a problem saying so."""
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        return data.decode("latin-1"), [f"{Path(str(where)).name}: not valid UTF-8; read as Latin-1"]


def read_text(path: Path, limit_name: str = "MAX_TEXT_FILE_BYTES", what: str = "file") -> tuple[str, list[str]]:
    """(text, problems) of a bounded regular file; see read_bytes and decode_text."""
    return decode_text(read_bytes(path, limit_name, what), path)


def is_inside(root: Path, path: Path) -> bool:
    """Whether `path`, with every symlink resolved, lies inside `root` (also resolved)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def confined_files(root: Path, suffixes: Optional[Iterable[str]] = None) -> list[Path]:
    """Regular files under `root` (sorted), never through a symlink that leaves `root`.

    Symlinked folders are not descended into; a symlinked file is kept only when its target is a regular file
    inside `root`. FIFOs, devices and sockets are skipped. `suffixes` (lower case, with the dot) filters names.
    """
    root = Path(root)
    wanted = tuple(s.lower() for s in suffixes) if suffixes is not None else None
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            if wanted is not None and not name.lower().endswith(wanted):
                continue
            path = Path(folder) / name
            try:
                st = os.stat(path)  # follows a link: what would be read
            except OSError:
                continue  # a dangling link
            if not stat.S_ISREG(st.st_mode) or (path.is_symlink() and not is_inside(root, path)):
                continue
            found.append(path)
            if len(found) > MAX_FOLDER_FILES:
                raise exceeded(root, "the number of files", "MAX_FOLDER_FILES")
    return found


# ---------------------------------------------------------------------------------------------- JSON


_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[{]|[\]}]', re.S)


def json_depth(text: str) -> int:
    """The deepest bracket nesting of a JSON (or JSON-like) text, strings skipped; linear time, no recursion."""
    depth = deepest = 0
    for m in _JSON_TOKEN.finditer(text):
        c = m.group()[0]
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif c in "]}":
            depth = max(0, depth - 1)
    return deepest


def check_json_depth(text: str, where: object) -> None:
    """LimitExceeded when `text` nests deeper than MAX_JSON_DEPTH (json.loads would raise RecursionError)."""
    if len(text) > MAX_JSON_BYTES:
        raise exceeded(where, f"JSON of {len(text):,} characters", "MAX_JSON_BYTES")
    # cheap first: a text with fewer brackets than the limit cannot nest deeper
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth(text) > MAX_JSON_DEPTH:
        raise exceeded(where, "JSON nesting", "MAX_JSON_DEPTH")


def loads_json(text: str | bytes, where: object) -> Any:
    """json.loads with the project's errors: InputError for bad JSON (a 5,000-digit number included),
    LimitExceeded for JSON nested deeper than MAX_JSON_DEPTH or larger than MAX_JSON_BYTES."""
    if isinstance(text, (bytes, bytearray)):
        text, _ = decode_text(bytes(text), where)
    check_json_depth(text, where)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise exceeded(where, "JSON nesting", "MAX_JSON_DEPTH") from None
    except ValueError as exc:  # int() digit limit: "Exceeds the limit (4300 digits) ..."
        raise InputError(f"{where}: unreadable JSON value ({str(exc).split(';')[0]})") from None


def read_json_file(path: Path, what: str = "JSON file") -> Any:
    """A bounded JSON file as a value; see read_bytes and loads_json."""
    return loads_json(read_bytes(path, "MAX_JSON_BYTES", what), path)


def value_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of lists and dicts in a parsed value, counted iteratively (stops past `limit`)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest
