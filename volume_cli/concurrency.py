"""Overlapping stages: run an iterator ahead on a background thread; one lock for compiled kernels;
numbered items whose one shared step must run in their order."""

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


# How long closing a prefetch waits for its producer to finish the item it is making.
PRODUCER_JOIN_S = 10.0


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Iterate ``items`` on a background thread, up to ``depth`` items ahead, so that producing
    (decoding, reading files) overlaps the consumer's work. An exception in the producer is raised
    in the consumer; when the consumer stops early the producer stops too, and closing the
    iterator (``with contextlib.closing(prefetch(...))``) waits for it to have stopped.

    That wait matters at exit: a producer thread still inside native code (a decoder, a numba
    kernel) when the interpreter shuts down is unwound by the runtime through C++ frames that do
    not allow it, and the process dies of SIGABRT after it has cleaned up, with no message."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def offer(item) -> bool:
        """Queue ``item`` unless the consumer stops first (then nobody will take it)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(done)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)

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
        # A generator may be finalised by the garbage collector on any thread, the producer's too,
        # and a thread cannot join itself.
        if threading.current_thread() is not thread:
            thread.join(PRODUCER_JOIN_S)


class InTurn:
    """Threads working on items 0, 1, 2, ... at once, where one step of each must see the items
    before it done (a clip's texture grows frame by frame): ``with turns.turn(k):`` waits until
    items 0..k-1 have had their turn (or given it up). Every item must end with ``done(k)``
    (repeating it is harmless), also when it fails before its turn, so that later ones go on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0  # every item below this is done
        self._finished: set[int] = set()  # done items above it

    @contextlib.contextmanager
    def turn(self, k: int):
        with self._cond:
            self._cond.wait_for(lambda: self._next >= k)
        try:
            yield
        finally:
            self.done(k)

    def done(self, k: int) -> None:
        with self._cond:
            if k >= self._next:
                self._finished.add(k)
                while self._next in self._finished:
                    self._finished.discard(self._next)
                    self._next += 1
                self._cond.notify_all()


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
