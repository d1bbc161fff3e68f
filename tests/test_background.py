"""backend/background.py: the loop every background worker runs in."""

from __future__ import annotations

import threading
import time

from backend.background import BackgroundThread


class Ticker(BackgroundThread):
    thread_name = "ticker"

    def __init__(self, every: float) -> None:
        super().__init__()
        self.every = every
        self.ticks = 0
        self.ticked = threading.Event()

    def run(self) -> None:
        while not self.stopping:
            self.ticks += 1
            self.ticked.set()
            self.pause(self.every)


def test_stop_ends_a_long_pause_at_once() -> None:
    t = Ticker(3600).start()
    assert t.ticked.wait(5)
    started = time.monotonic()
    t.stop(timeout=5)
    assert time.monotonic() - started < 2
    assert t._thread is None and t.ticks == 1


def test_wake_runs_the_loop_again_early() -> None:
    t = Ticker(3600).start()
    try:
        assert t.ticked.wait(5)
        t.ticked.clear()
        t.wake()
        assert t.ticked.wait(5) and t.ticks == 2
    finally:
        t.stop(timeout=5)


def test_a_pause_after_stop_does_not_wait() -> None:
    t = Ticker(3600)
    t.request_stop()
    started = time.monotonic()
    t.pause(3600)
    t.pause(3600)
    assert time.monotonic() - started < 1


def test_the_thread_is_a_named_daemon() -> None:
    t = Ticker(3600).start()
    try:
        assert t._thread is not None and t._thread.daemon and t._thread.name == "ticker"
    finally:
        t.stop(timeout=5)
