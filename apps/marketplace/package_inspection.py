"""What a plugin package (a zip) holds that a desktop plugin should not: executables and native
addons, symlinks, paths escaping the root (zip-slip), nested archives, zip bombs. And what a
reviewer reads of it: its file list and the start of each text file.

Framework-free: reads a seekable binary file and returns findings; it never extracts anything.
"""

from __future__ import annotations

import codecs
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Final

EXECUTABLE_EXTENSIONS: Final = frozenset(
    {".exe", ".dll", ".so", ".dylib", ".sh", ".bat", ".cmd", ".ps1", ".com", ".msi", ".node", ".app", ".bin"}
)
ARCHIVE_EXTENSIONS: Final = frozenset(
    {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".jar", ".asar", ".zst", ".cab"}
)
# Magic numbers of native executables (PE, ELF, Mach-O 32/64 both endians, fat) and archives.
EXECUTABLE_MAGIC: Final = (
    b"MZ",
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)
ARCHIVE_MAGIC: Final = (b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh", b"\xfd7zXZ")
MAX_MEMBERS: Final = 5000
MAX_LISTED: Final = 20  # findings listed per check; the count says how many there were
TEXT_PREVIEW_MAX_BYTES: Final = 64 * 1024  # what a reviewer is shown of one file; the rest is cut
TEXT_SNIFF_BYTES: Final = 1024


@dataclass
class PackageReport:
    is_zip: bool = True
    error: str = ""
    member_count: int = 0
    uncompressed_bytes: int = 0
    executables: list[str] = field(default_factory=list)
    symlinks: list[str] = field(default_factory=list)
    escaping_paths: list[str] = field(default_factory=list)
    nested_archives: list[str] = field(default_factory=list)
    too_many_members: bool = False


def _escapes_root(name: str) -> bool:
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return True
    return ".." in PurePosixPath(name).parts


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    # Unix mode bits live in the high 16 bits of external_attr when the creator was Unix.
    return stat.S_ISLNK(info.external_attr >> 16)


def inspect_package(handle: IO[bytes]) -> PackageReport:
    """Inspect a zip read from ``handle`` (seekable). A non-zip is reported, not raised."""
    report = PackageReport()
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return PackageReport(is_zip=False, error=f"Not a readable zip archive ({exc.__class__.__name__}).")
    with archive:
        infos = archive.infolist()
        report.member_count = len(infos)
        report.too_many_members = len(infos) > MAX_MEMBERS
        for info in infos[:MAX_MEMBERS]:
            name = info.filename
            report.uncompressed_bytes += info.file_size
            if _escapes_root(name):
                report.escaping_paths.append(name)
            if _is_symlink(info):
                report.symlinks.append(name)
                continue
            if info.is_dir():
                continue
            suffixes = {suffix.lower() for suffix in PurePosixPath(name).suffixes[-2:]}
            head = b""
            if info.file_size:
                try:
                    with archive.open(info) as member:
                        head = member.read(4)
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError):
                    report.error = report.error or f"Could not read {name}."
            if suffixes & EXECUTABLE_EXTENSIONS or head.startswith(EXECUTABLE_MAGIC):
                report.executables.append(name)
            elif suffixes & ARCHIVE_EXTENSIONS or head.startswith(ARCHIVE_MAGIC):
                report.nested_archives.append(name)
    return report


@dataclass(frozen=True)
class PackageEntry:
    path: str
    size: int
    is_text: bool


@dataclass(frozen=True)
class PackageText:
    path: str
    size: int
    text: str
    truncated: bool


def _looks_like_text(head: bytes, *, complete: bool) -> bool:
    """UTF-8 without NUL bytes; a multi-byte character cut by the end of ``head`` still counts."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _readable_member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo | None:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    return None if info.is_dir() or _is_symlink(info) else info


def package_listing(handle: IO[bytes]) -> list[PackageEntry]:
    """The files of a zip (directories and symlinks left out), at most ``MAX_MEMBERS``, each marked
    text or not from its first bytes; ``[]`` for a non-zip."""
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError):
        return []
    entries = []
    with archive:
        for info in archive.infolist()[:MAX_MEMBERS]:
            if info.is_dir() or _is_symlink(info):
                continue
            suffixes = {suffix.lower() for suffix in PurePosixPath(info.filename).suffixes[-2:]}
            is_text = not suffixes & (EXECUTABLE_EXTENSIONS | ARCHIVE_EXTENSIONS)
            if is_text and info.file_size:
                try:
                    with archive.open(info) as member:
                        head = member.read(TEXT_SNIFF_BYTES)
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError):
                    head = b"\x00"  # unreadable: not shown as text
                is_text = _looks_like_text(head, complete=len(head) >= info.file_size)
            entries.append(PackageEntry(path=info.filename, size=info.file_size, is_text=is_text))
    return entries


def package_text(handle: IO[bytes], path: str, *, max_bytes: int = TEXT_PREVIEW_MAX_BYTES) -> PackageText | None:
    """The first ``max_bytes`` of one file of the zip as text, or None when the zip has no such
    file or the file is not text. Only read, never extracted or run."""
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    with archive:
        info = _readable_member(archive, path)
        if info is None:
            return None
        try:
            with archive.open(info) as member:
                data = member.read(max_bytes)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError):
            return None
    truncated = info.file_size > len(data)
    if not _looks_like_text(data, complete=not truncated):
        return None
    return PackageText(
        path=info.filename, size=info.file_size, text=data.decode("utf-8", errors="replace"), truncated=truncated
    )
