"""prefetch: items in order, errors raised in the consumer, and a producer that has stopped by the
time the consumer closes it (a producer thread alive at interpreter exit aborts the process)."""

import contextlib
import threading
import time

import pytest

from volume_cli.concurrency import prefetch


def producer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefetch" and t.is_alive()]


def test_items_arrive_in_order_and_the_producer_ends():
    assert list(prefetch(range(50), depth=3)) == list(range(50))
    assert producer_threads() == []


def test_an_error_in_the_producer_is_raised_in_the_consumer():
    def items():
        yield 1
        raise ValueError("bad frame")

    with pytest.raises(ValueError, match="bad frame"):
        list(prefetch(items()))
    assert producer_threads() == []


def test_closing_early_waits_for_a_producer_busy_making_an_item():
    """The consumer stops (Ctrl-C) while the producer is inside a slow item, with the queue full:
    closing returns only once the producer has finished that item and left, without taking it."""
    made = []

    def slow_items():
        for i in range(100):
            time.sleep(0.05)  # a frame being decoded
            made.append(i)
            yield i

    with contextlib.closing(prefetch(slow_items(), depth=2)) as items:
        assert next(items) == 0
        time.sleep(0.3)  # the queue fills, the producer waits for room
    assert producer_threads() == []
    assert len(made) <= 5  # it stopped instead of running through the 100 items


def test_an_iterator_never_started_has_no_producer():
    with contextlib.closing(prefetch(iter(range(3)))):
        pass
    assert producer_threads() == []


def test_in_turn_runs_the_shared_step_in_item_order_whatever_the_threads_do():
    """Items finish their own work in reverse order, yet the turns go 0, 1, 2, ...; an item that
    gives its turn up (fails before it) lets the later ones go on."""
    from concurrent.futures import ThreadPoolExecutor

    from volume_cli.concurrency import InTurn

    turns, order = InTurn(), []

    def item(k: int) -> None:
        try:
            time.sleep(0.02 * (5 - k))  # later items are ready first
            if k == 2:
                raise RuntimeError("item 2 fails before its turn")
            with turns.turn(k):
                order.append(k)
        finally:
            turns.done(k)

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(item, k) for k in range(6)]
    assert order == [0, 1, 3, 4, 5]
    assert isinstance(futures[2].exception(), RuntimeError)
