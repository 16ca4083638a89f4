"""Overlapping stages: run an iterator ahead on a background thread; one lock for compiled kernels."""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

# numba's thread pools do not all take parallel kernel launches from several Python threads at
# once (its workqueue layer, the fallback where no OpenMP or TBB runtime is found, aborts the
# process). Every parallel numba kernel (render/rasterize_numba.py, predictors/geometric_kernels.py)
# is launched under this lock; it also keeps two launches from fighting over the same cores.
COMPILED_KERNEL_LOCK = threading.Lock()


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Iterate ``items`` on a background thread, up to ``depth`` items ahead, so that producing
    (decoding, reading files) overlaps the consumer's work. An exception in the producer is raised
    in the consumer; when the consumer stops early the producer stops too."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    thread = threading.Thread(target=run, daemon=True, name="prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


@contextlib.contextmanager
def signal_as_interrupt(sig: int):
    """Within the block the signal ``sig`` raises KeyboardInterrupt, as Ctrl-C does. Signal
    handlers can only be set from the main thread; elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(sig, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(sig, previous)
