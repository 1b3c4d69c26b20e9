"""Ground-floor plumbing: atomic file writes, JSONL, the home folder, peak memory.

Every writer in the package goes through here, so a crash never leaves a half-written file that a later run
would trust: writes go to a temporary file in the same folder and are renamed into place. JSONL is appended
line by line and fsynced; a last line cut off by a crash is ignored on read and dropped before the next append.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)

HOME_ENV = "CYCLERESEARCHER_HOME"


def home() -> Path:
    """The project's cache and model folder: $CYCLERESEARCHER_HOME, or ~/.cache/cycleresearcher."""
    value = os.environ.get(HOME_ENV)
    return Path(value) if value else Path(os.path.expanduser("~")) / ".cache" / "cycleresearcher"


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> Path:
    """Write `data` to `path` through a temporary file and a rename; readers see the old file or the new one.

    `mode` is applied to the new file (mkstemp creates files 0600, which surprises users of output files).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, value: Any, indent: int | None = 2, sort_keys: bool = False) -> Path:
    return write_text_atomic(path, json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=sort_keys,
                                              default=str) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[Any]) -> Path:
    """Replace a whole JSONL file at once (for files written in one go, not appended)."""
    return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def replace_dir_atomic(path: Path, fill: Callable[[Path], Any]) -> Path:
    """Make the folder `path` whole or not at all: `fill(tmp)` writes a sibling temp folder, which then replaces
    `path`. A crash leaves the old folder (or none) and at most a stale temp folder, cleared by the next call."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    fill(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def save_figure(fig, path: Path, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically (the format follows the suffix of `path`)."""
    import io as _io

    buffer = _io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", **savefig_kwargs)
    return write_bytes_atomic(path, buffer.getvalue())


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_jsonl(path: Path) -> list[Any]:
    """Rows of a JSONL file ([] when it does not exist); a last line cut off by a crash is ignored.

    A bad line before the last one means the file is damaged, not just cut off, and raises ValueError
    naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError):
            if n < len(lines) - 2:
                from .errors import InputError

                raise InputError(f"{path}:{n + 1} is not JSON (the file is damaged, not just cut off)") from None
            log.warning("%s: ignoring a last line cut off by a crash", path)
    return rows


def append_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """Append whole lines and fsync, so a kill loses at most the lines not yet appended."""
    rows = list(rows)
    if not rows:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _repair_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        fh.flush()
        os.fsync(fh.fileno())


def _repair_tail(path: Path) -> None:
    """Drop a partial last line left by a crash before appending after it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
    data = path.read_bytes()
    with open(path, "r+b") as fh:
        fh.truncate(data.rfind(b"\n") + 1)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
