"""The one shape of every background worker here: a daemon thread running a loop
until it is told to stop, which it can also be woken from early.

Used by the anchoring worker, the daily re-rating, the view warmer and the demo
draw. A subclass implements :meth:`run` and waits only through :meth:`pause`, so
:meth:`stop` ends it at once. This module must never hold the thread past
``stop``'s timeout: a worker that does not finish in time is left to die with
the process (it is a daemon).
"""

from __future__ import annotations

import threading
from typing import ClassVar, Self


class BackgroundThread:
    thread_name: ClassVar[str] = "background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or until woken or stopped (then at once)."""
        if not self._stop.is_set():
            self._wake.wait(seconds)
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        """Ask the loop to end without waiting for it."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
