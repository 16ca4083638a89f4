"""Progress bars on stderr (rich), shown only on a terminal and never under --json or --quiet."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from volume_cli import pipeline

stderr = Console(stderr=True, highlight=False)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:5.1f} fps", style="cyan")


class RichProgress(pipeline.Progress):
    """One bar at a time: description, bar, done/total, frames per second, elapsed, ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and stderr.is_terminal
        self._bar: Progress | None = None
        self._task = None

    def start(self, description: str, total: int | None) -> None:
        self.stop()
        if not self.enabled:
            return
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=stderr, transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def warn(message: str, quiet: bool) -> None:
    """A non-fatal problem, on stderr unless --quiet."""
    if not quiet:
        print(f"Warning: {message}", file=sys.stderr)


def silence_native_stderr() -> None:
    """Send what native libraries write to file descriptor 2 (MediaPipe's and TensorFlow Lite's
    C++ log lines, from their own threads, at any time) to /dev/null, while Python's sys.stderr
    (our progress, warnings and errors) keeps the real stderr. Only in a real process: under a
    test runner that has replaced sys.stderr, nothing is changed."""
    if sys.stderr is not sys.__stderr__ or sys.__stderr__ is None:
        return
    try:
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    sys.stderr.flush()
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = sys.__stderr__ = os.fdopen(real, "w", buffering=1, encoding=sys.__stderr__.encoding, errors="backslashreplace")
