"""What a plugin package (a zip) holds that a desktop plugin should not: executables and native
addons, symlinks, paths escaping the root (zip-slip), nested archives, zip bombs. And what a
reviewer reads of it: its file list and the start of each text file.

Framework-free: reads a seekable binary file and returns findings; it never extracts anything to disk.
Every member is decompressed as a stream and counted (the sizes a zip declares are the attacker's
to write), and reading stops at the first limit passed: too many bytes in total, or too many bytes
per compressed byte in one member or over the whole package.
"""

from __future__ import annotations

import codecs
import stat
import zipfile
import zlib
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
# Source, JSON and images compress well under 100:1; a zero-filled member reaches about 1000:1.
MAX_COMPRESSION_RATIO: Final = 100
# Under this many unpacked bytes a ratio says nothing (a tiny repetitive file), and costs nothing.
RATIO_GRACE_BYTES: Final = 1024 * 1024
READ_CHUNK: Final = 64 * 1024
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
    # members that unpack past MAX_COMPRESSION_RATIO (reading stopped there)
    compression_bombs: list[str] = field(default_factory=list)
    # the whole package unpacks past MAX_COMPRESSION_RATIO, or past the absolute limit
    total_ratio_exceeded: bool = False
    unpacked_limit_exceeded: bool = False

    @property
    def reading_stopped(self) -> bool:
        return bool(self.compression_bombs) or self.total_ratio_exceeded or self.unpacked_limit_exceeded


def _escapes_root(name: str) -> bool:
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return True
    return ".." in PurePosixPath(name).parts


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    # Unix mode bits live in the high 16 bits of external_attr when the creator was Unix.
    return stat.S_ISLNK(info.external_attr >> 16)


def _ratio_exceeded(unpacked: int, compressed: int) -> bool:
    return unpacked > RATIO_GRACE_BYTES and unpacked > MAX_COMPRESSION_RATIO * max(compressed, 1)


@dataclass
class _Totals:
    max_unpacked_bytes: int
    package_bytes: int  # the real size: a member's declared compressed size is the attacker's to inflate
    compressed: int = 0


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, report: PackageReport, limits: _Totals) -> bytes:
    """Decompress one member as a stream, counting; return its first bytes. Stops at the first limit passed."""
    head = b""
    unpacked = 0
    compressed = min(info.compress_size, limits.package_bytes)
    limits.compressed = min(limits.compressed + compressed, limits.package_bytes)
    with archive.open(info) as member:
        while chunk := member.read(READ_CHUNK):
            head = head or chunk[:4]
            unpacked += len(chunk)
            report.uncompressed_bytes += len(chunk)
            if _ratio_exceeded(unpacked, compressed):
                report.compression_bombs.append(info.filename)
            if _ratio_exceeded(report.uncompressed_bytes, limits.compressed):
                report.total_ratio_exceeded = True
            if report.uncompressed_bytes > limits.max_unpacked_bytes:
                report.unpacked_limit_exceeded = True
            if report.reading_stopped:
                break
    return head


def inspect_package(handle: IO[bytes], *, max_unpacked_bytes: int) -> PackageReport:
    """Inspect a zip read from ``handle`` (seekable). A non-zip is reported, not raised.

    ``uncompressed_bytes`` counts what was really decompressed, up to where reading stopped.
    """
    report = PackageReport()
    package_bytes = handle.seek(0, 2)
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return PackageReport(is_zip=False, error=f"Not a readable zip archive ({exc.__class__.__name__}).")
    totals = _Totals(max_unpacked_bytes=max_unpacked_bytes, package_bytes=package_bytes)
    with archive:
        infos = archive.infolist()
        report.member_count = len(infos)
        report.too_many_members = len(infos) > MAX_MEMBERS
        for info in infos[:MAX_MEMBERS]:
            name = info.filename
            if _escapes_root(name):
                report.escaping_paths.append(name)
            if _is_symlink(info):
                report.symlinks.append(name)
                continue
            if info.is_dir():
                continue
            suffixes = {suffix.lower() for suffix in PurePosixPath(name).suffixes[-2:]}
            head = b""
            if not report.reading_stopped:
                try:
                    head = _read_member(archive, info, report, totals)
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, zlib.error):
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
