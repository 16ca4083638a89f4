"""Atomic file writes: a reader (or a resumed run) sees either the old file or the complete new one,
never a half-written file.

A file is written to a hidden temporary name in the same directory (``.frame_000012.ply.tmp-4711``,
4711 being the writer's process id), flushed and fsync'ed, then renamed over the target with
``os.replace``, which is atomic on POSIX and Windows when both names are on one file system (hence
the same directory). A run that is killed between the two steps leaves the temporary file behind;
``remove_stale_temp_files`` clears those before a resumed run writes again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# ".<target name>.tmp-<pid>"; the pid tells which run left the file.
_TEMP_PATTERN = re.compile(r"\..+\.tmp-(\d+)")


def temp_path_for(path: Path) -> Path:
    """The temporary name this process uses while writing ``path``."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through, piece by piece, atomically: it appears at ``path``
    (flushed, fsync'ed, renamed) when the block ends normally. On any exception the temporary
    file is removed and ``path`` is left as it was (absent, or its old content). A long file
    (sequence.json of a long clip) is written this way without ever being held whole."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            # fsync before the rename: otherwise a crash can leave the new name pointing at an
            # empty file on some file systems (ext4 delayed allocation).
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # BaseException: a Ctrl-C mid-write must not leave the temporary file either.
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_open``)."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (see ``atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON text (UTF-8, trailing newline) to ``path`` atomically.

    The object is serialised before anything is written, so an object that is not JSON-serialisable
    raises ``TypeError`` and leaves no file behind.
    """
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files that an interrupted run left in ``folder``; return what was deleted.

    Only names of the form ``.<name>.tmp-<pid>`` are touched, and never this process's own. Run it
    before writing into a folder that no other process is writing into (e.g. ``convert --resume``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"folder must be an existing directory, got {str(folder)!r}")
    own_pid = os.getpid()
    removed = []
    for entry in folder.iterdir():
        m = _TEMP_PATTERN.fullmatch(entry.name)
        if m and int(m.group(1)) != own_pid and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return sorted(removed)
