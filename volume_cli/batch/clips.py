"""Converting many clips: which folder each gets, and running N single-clip converts at a time.

Each clip is converted by its own ``volume convert CLIP -o DIR/NAME ... --json`` process, so a
clip in a batch behaves exactly as it would alone (its resume, its Ctrl-C handling, its one JSON
object, its exit code), one clip's crash cannot take the others down, and N processes use N cores
without sharing MediaPipe or numba state. The parent only schedules, collects the JSON objects
and reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

EXIT_INTERRUPTED = 130


class BatchInputError(ValueError):
    """A list file that cannot be read, or no clips at all."""


def expand_sources(items: list[str]) -> list[Path]:
    """Clip paths from the command line: paths as given, and ``@FILE`` for a file of paths (one a
    line; blank lines and lines starting with # skipped; relative paths are relative to the file's
    folder)."""
    out: list[Path] = []
    for item in items:
        if not item.startswith("@"):
            out.append(Path(item))
            continue
        listing = Path(item[1:])
        try:
            lines = listing.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise BatchInputError(f"cannot read the list {listing}: {e}") from e
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line).expanduser()
                out.append(path if path.is_absolute() else listing.parent / path)
    if not out:
        raise BatchInputError("no clips to convert (the list is empty)")
    return out


def output_folders(sources: list[Path], root: Path) -> list[Path]:
    """One folder under ``root`` per clip, named after the clip (talk.mp4 -> talk); the same name
    twice gets -2, -3, ... in the order given (a/talk.mp4 -> talk, b/talk.mp4 -> talk-2)."""
    taken: set[str] = set()
    out = []
    for source in sources:
        stem = source.stem if source.suffix else source.name
        name, k = stem or "clip", 2
        while name.lower() in taken:
            name, k = f"{stem}-{k}", k + 1
        taken.add(name.lower())
        out.append(root / name)
    return out


@dataclass
class ClipResult:
    source: Path
    output: Path
    exit_code: int | None = None  # None: never started (the batch was interrupted first)
    summary: dict | None = None  # the clip's own --json object
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def as_json(self) -> dict:
        state = "converted" if self.ok else "not started" if self.exit_code is None else "interrupted" if self.exit_code == EXIT_INTERRUPTED else "failed"
        return {"source": str(self.source), "output": str(self.output), "status": state, "exit_code": self.exit_code,
                **({"result": self.summary} if self.summary is not None else {}),
                **({"error": self.error} if self.error else {})}


def clip_command(source: Path, output: Path, convert_args: list[str], python: str | None = None) -> list[str]:
    """The single-clip convert a batch runs for one clip: its one JSON object on stdout, no progress."""
    return [python or sys.executable, "-m", "volume_cli", "convert", str(source), "-o", str(output), *convert_args, "--json", "--quiet"]


def record_exit(result: ClipResult, code: int, stdout: str, stderr: str) -> None:
    """Fill ``result`` from a finished clip process: its exit code, its JSON object (the last line
    of stdout) and, when it failed, its last ``Error: ...`` line (else the last line of stderr)."""
    result.exit_code = code
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    try:
        result.summary = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result.summary = None
    if code != 0:
        errors = [ln.removeprefix("Error: ") for ln in stderr.splitlines() if ln.startswith("Error: ")]
        result.error = errors[-1] if errors else (stderr.strip().splitlines() or [f"exit code {code}"])[-1]


def convert_clips(pairs: list[tuple[Path, Path]], convert_args: list[str], jobs: int,
                  on_done: Callable[[ClipResult, int, int], None] | None = None) -> tuple[list[ClipResult], bool]:
    """Run ``volume convert SRC -o OUT *convert_args --json --quiet`` for every (SRC, OUT), ``jobs``
    at a time. Returns (one result per pair in order, interrupted). On Ctrl-C or SIGTERM (raised
    here as KeyboardInterrupt) the running converts are asked to stop as Ctrl-C would (each leaves
    a consistent, resumable folder), none is started, and the results say so."""
    results = [ClipResult(source=s, output=o) for s, o in pairs]
    pending = list(range(len(pairs)))
    running: dict[int, subprocess.Popen] = {}
    done = 0
    interrupted = False

    def start(i: int) -> None:
        source, output = pairs[i]
        running[i] = subprocess.Popen(clip_command(source, output, convert_args), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      start_new_session=True)  # our signals reach it only as we forward them

    def finish(i: int) -> None:
        nonlocal done
        proc = running.pop(i)
        out, err = proc.communicate()
        record_exit(results[i], proc.returncode, out, err)
        r = results[i]
        done += 1
        if on_done:
            on_done(r, done, len(pairs))

    try:
        while pending or running:
            while pending and len(running) < jobs:
                start(pending.pop(0))
            for i in [i for i, p in running.items() if p.poll() is not None]:
                finish(i)
            time.sleep(0.05)
    except KeyboardInterrupt:
        interrupted = True
        for proc in running.values():
            with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
                os.killpg(proc.pid, signal.SIGINT)
        for i in list(running):
            finish(i)
    return results, interrupted

