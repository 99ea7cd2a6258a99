"""Draining on SIGTERM: the server stops being ready at once, then stops listening, then finishes what it has.

An ASGI server (uvicorn) handles SIGTERM by closing its listener, waiting for open connections up to
its graceful-shutdown timeout, cancelling what is left and only then running the app's lifespan
shutdown - so on its own the app learns of the signal too late to tell a load balancer, and SSE
streams (which last as long as their run) are cut when the timeout passes. :class:`Drain` puts itself
in front of the server's handler when the app starts in the main thread of a server that caught
SIGTERM: on the signal it sets :attr:`Drain.started` (``/readyz`` answers 503 and every SSE stream
ends after the frame it is sending, so its client reconnects elsewhere with ``Last-Event-ID``), waits
``AGENTADAPTER_SHUTDOWN_DELAY_S`` with the listener still open (a pre-stop delay), then passes the
signal on to the server. Inline runs still going when the lifespan shutdown starts get what is left
of ``AGENTADAPTER_SHUTDOWN_GRACE_S`` (:meth:`Drain.remaining`) to end by themselves before they are
handed over (:meth:`agentadapter.server.executor.InlineExecutor.shutdown`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

__all__ = ["Drain"]

logger = logging.getLogger("agentadapter.server")


class Drain:
    """This process's drain: started by SIGTERM (or :meth:`begin`), read by ``/readyz``, SSE and shutdown."""

    def __init__(self, *, grace_s: float, delay_s: float) -> None:
        self.grace_s = grace_s
        self.delay_s = delay_s
        self.started = asyncio.Event()
        """Set when draining begins: not ready, SSE streams end at their next frame boundary."""
        self.started_at: float | None = None
        self.signalled = False
        """Whether draining began with SIGTERM (the grace period applies only then)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None
        self._installed = False

    def install(self) -> bool:
        """Intercept SIGTERM ahead of the ASGI server's handler; returns whether it did.

        Only in the main thread (signals are delivered there) and only when a server already handles
        SIGTERM: an app run by tests or embedded without signal handling is left alone."""
        if threading.current_thread() is not threading.main_thread():
            return False
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):  # SIG_DFL, SIG_IGN or set outside Python: nobody would shut down gracefully
            return False
        self._loop = asyncio.get_running_loop()
        self._previous = previous
        signal.signal(signal.SIGTERM, self._on_signal)
        self._installed = True
        return True

    def uninstall(self) -> None:
        """Give SIGTERM back to the server's handler (unless someone replaced ours meanwhile)."""
        if self._installed and signal.getsignal(signal.SIGTERM) == self._on_signal:
            signal.signal(signal.SIGTERM, self._previous)
        self._installed = False

    def begin(self) -> None:
        """Start draining (idempotent): called in the event loop's thread."""
        if self.started.is_set():
            return
        self.started_at = time.monotonic()
        self.started.set()
        logger.warning("draining: /readyz answers 503, SSE streams end, in-flight requests and runs get %.1f s",
                       self.grace_s)

    def remaining(self) -> float:
        """What is left of the grace period; none when the shutdown did not start with SIGTERM (Ctrl+C, an
        embedding application or a test closing the app): then runs are handed over at once."""
        if self.started_at is None or not self.signalled:
            return 0.0
        return max(0.0, self.grace_s - (time.monotonic() - self.started_at))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        loop = self._loop
        if self.started.is_set() or loop is None or loop.is_closed():
            self._previous(signum, frame)  # a second SIGTERM: no more delay
            return
        # A signal handler runs between two bytecodes of the loop's thread: hand the work to the loop.
        loop.call_soon_threadsafe(self._start_from_signal, signum, frame)

    def _start_from_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = True
        self.begin()
        assert self._loop is not None
        if self.delay_s > 0:
            self._loop.call_later(self.delay_s, self._previous, signum, frame)
        else:
            self._previous(signum, frame)
