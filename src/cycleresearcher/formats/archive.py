"""Safe extraction of arXiv source archives, and finding the main .tex file inside.

arXiv serves a paper's source as a tar.gz, as a bare gzip of a single .tex file (no tar inside), or as a plain
file; users bring zips too. Archives come from strangers, so every member is validated before anything is
written: no absolute paths, no `..`, no links that leave the destination, no devices or fifos, a member count
cap and a size cap. The size cap is checked on the declared sizes first and then on the bytes actually
written, so a lying header cannot get past it.

    from cycleresearcher.formats.archive import safe_extract, find_main_tex
    folder = safe_extract(Path("2411.00816.tar.gz"), Path("work/2411.00816"))
    main = find_main_tex(folder)
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Optional

from .. import limits
from ..errors import InputError

log = logging.getLogger(__name__)

_CHUNK = 1 << 16  # bytes per read while copying members
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAIN_NAMES = ("main", "paper", "ms")
# what a truncated or corrupt compressed archive raises while we read it (NotImplementedError: a zip member
# compressed with a method zipfile cannot decode; RuntimeError: a zip that needs a password)
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError, NotImplementedError,
            RuntimeError)
_DOCCLASS = re.compile(r"\\document(?:class|style)\b")
_BEGIN_DOC = re.compile(r"\\begin\s*\{document\}")


class UnsafeArchiveError(InputError):
    """The archive holds a member that would escape the destination, or is too large."""


@dataclass
class _Member:
    """One validated archive member, ready to extract."""

    name: str  # normalised relative POSIX path
    kind: str  # "file" | "dir" | "link"
    size: int = 0  # declared size (files)
    link_to: str = ""  # normalised relative target (links)
    source: object = None  # TarInfo or ZipInfo


def safe_extract(archive: Path, dest: Path, max_bytes: int = limits.MAX_ARCHIVE_BYTES,
                 max_members: int = limits.MAX_ARCHIVE_MEMBERS) -> Path:
    """Extract `archive` into `dest` (created if needed) after validating every member; return `dest`.

    Handles tar (any compression tarfile reads), zip, a bare gzip/bzip2/xz stream of one file (written as
    dest/main.tex, detected by magic bytes, not by extension) and a plain .tex file (copied). Links inside
    the archive that stay inside `dest` are materialised as copies, so no symlink is ever created.

    Raises UnsafeArchiveError naming the offending member, FileNotFoundError when `archive` is missing, and
    InputError for a file that is no archive we know, a corrupt one, a FIFO or a device.
    """
    archive, dest = Path(archive), Path(dest)
    limits.check_regular_file(archive, "archive")
    dest.mkdir(parents=True, exist_ok=True)
    with archive.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        _extract_zip(archive, dest, max_bytes, max_members)
    elif _is_tar(archive):
        _extract_tar(archive, dest, max_bytes, max_members)
    elif _stream_opener(head) is not None:
        _extract_stream(archive, dest, _stream_opener(head), max_bytes)
    elif archive.suffix.lower() in (".tex", ".ltx", ".latex"):
        target = dest / _clean_name(archive.name, archive.name)
        _copy_capped(archive.open("rb"), target, archive.name, max_bytes, 0)
    else:
        raise InputError(
            f"{archive}: not a tar, zip, gzip/bzip2/xz or .tex file (first bytes {head[:4]!r})")
    return dest


def _is_tar(path: Path) -> bool:
    # tarfile checks the header checksum, so a gzipped .tex is never mistaken for a tar.
    try:
        with tarfile.open(path, "r:*"):
            return True
    except _CORRUPT:
        return False


def _stream_opener(head: bytes) -> Optional[Callable[[Path], IO[bytes]]]:
    if head.startswith(b"\x1f\x8b"):
        return lambda p: gzip.open(p, "rb")
    if head.startswith(b"BZh"):
        return lambda p: bz2.open(p, "rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lambda p: lzma.open(p, "rb")
    return None


# ---------------------------------------------------------------------------------------------- validation


def _clean_name(raw: str, member: str) -> str:
    """The member's path as a normalised relative POSIX path, or UnsafeArchiveError."""
    if "\x00" in raw:
        raise UnsafeArchiveError(f"member {member!r}: NUL byte in its name")
    name = raw.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        raise UnsafeArchiveError(f"member {member!r}: absolute path refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"member {member!r}: '..' in its path refused")
    return "/".join(parts)


def _link_target(member_name: str, target: str, relative_to_member: bool) -> str:
    """A link's target as a normalised path inside the archive root, or UnsafeArchiveError."""
    t = target.replace("\\", "/")
    if t.startswith("/") or _DRIVE.match(t):
        raise UnsafeArchiveError(f"member {member_name!r}: link to absolute path {target!r} refused")
    base = posixpath.dirname(member_name) if relative_to_member else ""
    joined = posixpath.normpath(posixpath.join(base, t)) if t else ""
    if joined in ("", ".") or joined == ".." or joined.startswith("../"):
        raise UnsafeArchiveError(f"member {member_name!r}: link to {target!r} leaves the destination")
    return joined


def _check_totals(members: list[_Member], max_bytes: int, max_members: int, archive: Path) -> None:
    if len(members) > max_members:
        raise UnsafeArchiveError(f"{archive.name}: more than {max_members} members")
    total = 0
    for m in members:
        total += m.size
        if total > max_bytes:
            raise UnsafeArchiveError(
                f"member {m.name!r}: declared sizes exceed the cap of {max_bytes} bytes")


def _inside(dest: Path, target: Path) -> bool:
    root = os.path.realpath(dest)
    real = os.path.realpath(target)
    return real == root or real.startswith(root + os.sep)


# ---------------------------------------------------------------------------------------------- tar


def _tar_members(tf: tarfile.TarFile, max_members: int, archive: Path) -> list[_Member]:
    members: list[_Member] = []
    for info in tf:  # iterate lazily so a member-count bomb stops at the cap
        if len(members) >= max_members:
            raise UnsafeArchiveError(f"{archive.name}: more than {max_members} members")
        name = _clean_name(info.name, info.name)
        if info.isdir():
            members.append(_Member(name, "dir", source=info))
        elif info.isreg():
            members.append(_Member(name, "file", size=max(info.size, 0), source=info))
        elif info.issym():
            members.append(_Member(name, "link", link_to=_link_target(info.name, info.linkname, True),
                                   source=info))
        elif info.islnk():
            # tar hard links name their target relative to the archive root
            members.append(_Member(name, "link", link_to=_link_target(info.name, info.linkname, False),
                                   source=info))
        elif info.ischr() or info.isblk() or info.isfifo():
            raise UnsafeArchiveError(f"member {info.name!r}: device file or fifo refused")
        else:
            raise UnsafeArchiveError(f"member {info.name!r}: unsupported tar member type {info.type!r}")
        if not name and members[-1].kind != "dir":
            raise UnsafeArchiveError(f"member {info.name!r}: empty path refused")
    return members


def _extract_tar(archive: Path, dest: Path, max_bytes: int, max_members: int) -> None:
    with tarfile.open(archive, "r:*") as tf:
        try:
            members = _tar_members(tf, max_members, archive)
        except _CORRUPT as exc:
            raise InputError(f"{archive}: corrupt tar archive ({type(exc).__name__}: {exc})") from exc
        _check_totals(members, max_bytes, max_members, archive)
        _write_members(members, dest, max_bytes, lambda m: tf.extractfile(m.source))


# ---------------------------------------------------------------------------------------------- zip


def _extract_zip(archive: Path, dest: Path, max_bytes: int, max_members: int) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except _CORRUPT as exc:
        raise InputError(f"{archive}: not a readable zip file ({type(exc).__name__}: {exc})") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise UnsafeArchiveError(f"{archive.name}: more than {max_members} members")
        members: list[_Member] = []
        for info in infos:
            name = _clean_name(info.filename, info.filename)
            mode = info.external_attr >> 16
            if info.flag_bits & 0x1:
                raise UnsafeArchiveError(f"member {info.filename!r}: encrypted member, cannot extract")
            if info.is_dir():
                members.append(_Member(name, "dir", source=info))
            elif stat.S_ISLNK(mode):
                try:
                    target = zf.read(info)[:4096].decode("utf-8", "replace")
                except _CORRUPT as exc:
                    raise InputError(f"{archive}: link member {info.filename!r} cannot be read "
                                     f"({type(exc).__name__}: {exc})") from exc
                members.append(_Member(name, "link", link_to=_link_target(info.filename, target, True),
                                       source=info))
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                raise UnsafeArchiveError(f"member {info.filename!r}: device file or fifo refused")
            elif not name:
                raise UnsafeArchiveError(f"member {info.filename!r}: empty path refused")
            else:
                members.append(_Member(name, "file", size=info.file_size, source=info))
        _check_totals(members, max_bytes, max_members, archive)
        _write_members(members, dest, max_bytes, lambda m: zf.open(m.source))


# ---------------------------------------------------------------------------------------------- single stream


def _extract_stream(archive: Path, dest: Path, opener: Callable[[Path], IO[bytes]], max_bytes: int) -> None:
    """A compressed single file (arXiv's bare gzip of one .tex): decompress to dest/main.tex."""
    target = None
    try:
        with opener(archive) as src:
            head = src.read(5)
            # arXiv also serves PDF-only submissions this way; do not call a PDF main.tex
            target = dest / ("main.pdf" if head.startswith(b"%PDF") else "main.tex")
            _copy_capped(src, target, archive.name, max_bytes, 0, prefix=head)
    except _CORRUPT as exc:
        if target is not None:
            target.unlink(missing_ok=True)
        raise InputError(f"{archive}: corrupt compressed stream ({type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------------------------------- writing


def _copy_capped(src: IO[bytes], target: Path, member: str, max_bytes: int, written: int,
                 prefix: bytes = b"") -> int:
    """Copy `src` to `target`, counting bytes against the cap; return the new running total."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():  # a link already in dest: writing would follow it out
        src.close()
        raise UnsafeArchiveError(f"member {member!r}: would overwrite the link {target}")
    try:
        with src, open(target, "wb") as out:
            chunk = prefix
            while True:
                if chunk:
                    written += len(chunk)
                    if written > max_bytes:
                        raise UnsafeArchiveError(
                            f"member {member!r}: extracted bytes exceed the cap of {max_bytes} bytes")
                    out.write(chunk)
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
    except UnsafeArchiveError:
        target.unlink(missing_ok=True)
        raise
    return written


def _write_members(members: list[_Member], dest: Path, max_bytes: int,
                   open_member: Callable[[_Member], Optional[IO[bytes]]]) -> None:
    created: list[Path] = []
    written = 0
    try:
        for m in members:
            target = dest / m.name if m.name else dest
            # dest may have held symlinks before we came; never write through one
            if not _inside(dest, target.parent if m.kind != "dir" else target):
                raise UnsafeArchiveError(f"member {m.name!r}: resolves outside the destination")
            if m.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
            elif m.kind == "file":
                if target.is_symlink() or target.is_dir():
                    raise UnsafeArchiveError(f"member {m.name!r}: would overwrite a link or folder")
                src = open_member(m)
                if src is None:
                    continue
                created.append(target)
                written = _copy_capped(src, target, m.name, max_bytes, written)
        for m in members:  # links last, once their targets exist
            if m.kind != "link":
                continue
            source, target = dest / m.link_to, dest / m.name
            if not (source.is_file() and _inside(dest, source) and _inside(dest, target.parent)):
                log.warning("archive link %r -> %r skipped: target is not an extracted file", m.name, m.link_to)
                continue
            written += source.stat().st_size
            if written > max_bytes:
                raise UnsafeArchiveError(f"member {m.name!r}: extracted bytes exceed the cap of {max_bytes} bytes")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.is_dir():
                raise UnsafeArchiveError(f"member {m.name!r}: would overwrite a link or folder")
            created.append(target)
            shutil.copyfile(source, target)
    except (UnsafeArchiveError, *_CORRUPT) as exc:
        for path in created:  # leave dest as we found it
            path.unlink(missing_ok=True)
        if isinstance(exc, UnsafeArchiveError):
            raise
        raise InputError(f"corrupt archive: {type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------------------------------------- main file


def _tex_files(folder: Path) -> list[Path]:
    return limits.confined_files(folder, (".tex",))


def find_main_tex(folder: Path) -> Path:
    """The main .tex file of a LaTeX project folder.

    Candidates hold `\\documentclass` (outside comments); one that also has `\\begin{document}` wins, then
    the names main/paper/ms, then the larger file, then the shallower path. FileNotFoundError when none.
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() == ".tex":
        return folder
    if not folder.is_dir():
        raise FileNotFoundError(f"LaTeX project folder not found: {folder}")
    scored = []
    for path in _tex_files(folder):
        with open(path, "rb") as handle:  # a regular file inside the folder (confined_files checked both)
            text = _without_comments(handle.read(5_000_000).decode("utf-8", "replace"))
        if not _DOCCLASS.search(text):
            continue
        named = path.stem.lower() in _MAIN_NAMES
        depth = len(path.relative_to(folder).parts)
        scored.append(((bool(_BEGIN_DOC.search(text)), named, path.stat().st_size, -depth), path))
    if not scored:
        n = len(_tex_files(folder))
        raise FileNotFoundError(
            f"no main LaTeX file in {folder}: none of its {n} .tex files has \\documentclass")
    scored.sort(key=lambda item: (item[0], -len(str(item[1]))), reverse=True)
    return scored[0][1]


def _without_comments(text: str) -> str:
    from .latex_text import strip_comments

    return strip_comments(text)
