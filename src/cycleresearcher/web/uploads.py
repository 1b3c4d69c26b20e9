"""Uploaded papers: checked before anything reads them, each kept in its own temp folder until its job ends.

    folder, path = save_upload("paper.pdf", data, max_bytes=50_000_000)   # InputError / LimitExceeded when bad
    folder, path = save_pasted(text, max_bytes=50_000_000)

Only the checks that need no parsing happen here (size, kind, magic bytes, binary data in a text file). Reading
the paper is the document loader's job (archives go through its safe extractor) and happens in the worker.
Nothing here runs a shell or compiles LaTeX.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import InputError, LimitExceeded
from ..io import write_bytes_atomic

# kind -> suffixes (longest first, so .tar.gz wins over .gz)
KINDS = {
    "pdf": (".pdf",),
    "latex": (".tex", ".ltx"),
    "archive": (".tar.gz", ".tgz", ".zip", ".tar", ".gz"),
    "markdown": (".md", ".markdown"),
    "text": (".txt",),
    "paper-json": (".json",),  # a paper.json written by `research`
}
ACCEPT = ",".join(s for suffixes in KINDS.values() for s in suffixes)  # for the file input's accept=
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_TEMP_PREFIX = "cycleresearcher-upload-"


def kind_of(name: str) -> tuple[str, str]:
    """(kind, suffix) of a file name; InputError for a kind the reviewer cannot read."""
    lower = name.lower()
    for kind, suffixes in KINDS.items():
        for suffix in suffixes:
            if lower.endswith(suffix):
                return kind, suffix
    raise InputError(f"{name or 'the file'}: not a paper format the reviewer reads; upload a .pdf, a .tex, a LaTeX "
                     f"archive (.zip, .tar.gz, .tgz), a .md, a .txt or a paper.json written by `research`")


def safe_name(name: str) -> str:
    """The file's base name with only [A-Za-z0-9._-] (a path in the name is dropped, never followed)."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    base = _SAFE_CHARS.sub("_", base).lstrip(".") or "paper"
    return base[-120:]


def check_bytes(name: str, data: bytes, max_bytes: int) -> str:
    """Raise when the upload is empty, too large, of an unknown kind, or not what its suffix says; return kind."""
    if len(data) > max_bytes:
        raise LimitExceeded(f"{name}: {len(data) / 1e6:.3g} MB is over the upload limit of {max_bytes / 1e6:.3g} MB")
    if not data.strip():
        raise InputError(f"{name}: the file is empty")
    kind, suffix = kind_of(name)
    if kind == "pdf" and not data.lstrip()[:5].startswith(b"%PDF"):
        raise InputError(f"{name}: not a PDF (it does not start with %PDF)")
    if kind == "archive":
        magic = {".zip": (b"PK\x03\x04", b"PK\x05\x06"), ".gz": (b"\x1f\x8b",), ".tgz": (b"\x1f\x8b",),
                 ".tar.gz": (b"\x1f\x8b",)}.get(suffix)
        is_tar = len(data) > 262 and data[257:262] == b"ustar"
        if (magic and not data.startswith(magic)) or (suffix == ".tar" and not is_tar):
            raise InputError(f"{name}: not a {suffix} archive (its first bytes do not match)")
    if kind in ("latex", "markdown", "text", "paper-json"):
        _check_text(name, data)
    return kind


def _check_text(name: str, data: bytes) -> None:
    sample = data[:200_000]
    if b"\x00" in sample:
        raise InputError(f"{name}: looks like binary data, not text (it holds NUL bytes)")
    text = sample.decode("utf-8", "replace")
    bad = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\n\r\t\f"))
    if bad > 0.05 * len(text):
        raise InputError(f"{name}: looks like binary data, not text ({bad} of {len(text)} characters unreadable)")


def new_folder() -> Path:
    """A fresh private temp folder for one upload."""
    return Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))


def remove_folder(folder: Path) -> None:
    """Remove an upload's temp folder (only folders this module made)."""
    if folder.name.startswith(_TEMP_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)


def save_upload(name: str, data: bytes, max_bytes: int) -> tuple[Path, Path]:
    """Check an uploaded file and write it into its own temp folder; returns (folder, file)."""
    name = safe_name(name)
    check_bytes(name, data, max_bytes)
    folder = new_folder()
    return folder, write_bytes_atomic(folder / name, data, mode=0o600)


def save_pasted(text: str, max_bytes: int) -> tuple[Path, Path]:
    """Pasted text as a .tex file when it looks like LaTeX, else as markdown; returns (folder, file)."""
    data = text.replace("\r\n", "\n").encode("utf-8")
    looks_latex = re.search(r"\\(documentclass|begin\{document\}|section\*?\{|title\{)", text) is not None
    name = "pasted.tex" if looks_latex else "pasted.md"
    if not text.strip():
        raise InputError("the pasted text is empty")
    check_bytes(name, data, max_bytes)
    folder = new_folder()
    return folder, write_bytes_atomic(folder / name, data, mode=0o600)
