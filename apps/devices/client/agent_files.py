"""How the reference client answers ``agent_run``: read the configured folders (extension filter),
and cut the files into ``agent_data`` pieces that each fit in one frame.

Plain Python (no Django): it is the device side. Files the client cannot send (unreadable, or
too large for one frame) are named in ``agent_complete``'s ``errors``. Folders are read lazily
(``folder_files``), so a run's first piece leaves after its first few files, not after the last.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

# One agent_data frame stays well under the server's frame limit (DEVICE_MAX_FRAME_BYTES, 4 MiB by default).
PIECE_MAX_BYTES = 512 * 1024
PIECE_MAX_FILES = 200
# The first piece of a run holds this many files, each next one up to twice as many: the server
# extracts a piece's files as it arrives, so a small first piece sets it working at once, and
# later, larger pieces keep the frames few.
FIRST_PIECE_FILES = 4
# A file larger than this cannot travel in one piece; it is reported instead of sent.
FILE_MAX_BYTES = PIECE_MAX_BYTES - 4096


class FolderScan(NamedTuple):
    files: list[dict[str, Any]]
    errors: list[str]


def _wanted(name: str, extensions: set[str]) -> bool:
    return not extensions or Path(name).suffix.lower() in extensions


def folder_files(
    paths: list[str], file_extensions: list[str], errors: list[str], *, file_max_bytes: int = FILE_MAX_BYTES
) -> Iterator[dict[str, Any]]:
    """Every matching file under ``paths`` (recursively, sorted), as ``agent_data`` file entries, each
    read when it is asked for; a file it cannot send is named in ``errors`` instead."""
    extensions = {(e if e.startswith(".") else f".{e}").lower() for e in file_extensions if e}
    for root in paths:
        base = Path(root).expanduser()
        if not base.is_dir():
            errors.append(f"{root}: not a folder on this device")
            continue
        for directory, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if not _wanted(name, extensions):
                    continue
                path = Path(directory) / name
                try:
                    stat = path.stat()
                    if stat.st_size > file_max_bytes:
                        errors.append(f"{path}: {stat.st_size} bytes, too large to send")
                        continue
                    content = path.read_text(encoding="utf-8", errors="replace")
                except OSError as exc:
                    errors.append(f"{path}: {exc.strerror or exc}")
                    continue
                yield {
                    "path": str(path),
                    "name": name,
                    "content": content,
                    "metadata": {"size": stat.st_size, "modified": int(stat.st_mtime * 1000)},
                }


def scan_folders(paths: list[str], file_extensions: list[str], *, file_max_bytes: int = FILE_MAX_BYTES) -> FolderScan:
    """Every matching file under ``paths``, read at once (see ``folder_files``)."""
    errors: list[str] = []
    files = list(folder_files(paths, file_extensions, errors, file_max_bytes=file_max_bytes))
    return FolderScan(files, errors)


def pieces(
    files: Iterable[dict[str, Any]],
    *,
    max_bytes: int = PIECE_MAX_BYTES,
    max_files: int = PIECE_MAX_FILES,
    first_files: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Consecutive groups of files, each group's JSON under ``max_bytes`` (a lone big file goes alone).

    ``first_files``: the first group holds at most that many files, and each next one at most twice
    as many as the one before (never more than ``max_files``)."""
    group: list[dict[str, Any]] = []
    size = 0
    limit = min(first_files or max_files, max_files)
    for file in files:
        file_size = len(json.dumps(file))
        if group and (size + file_size > max_bytes or len(group) >= limit):
            yield group
            group, size = [], 0
            limit = min(limit * 2, max_files)
        group.append(file)
        size += file_size
    if group:
        yield group
