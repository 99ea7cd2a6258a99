"""The server's background loops (the retention purge, the run-lease renewer and reaper): a task started
in the lifespan and, at shutdown, cancelled and awaited so nothing outlives the app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

__all__ = ["BackgroundLoop"]


class BackgroundLoop:
    """Holds one background task of the server; :meth:`stop` cancels it and waits for it to end."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def _spawn(self, loop: Coroutine[Any, Any, None], name: str) -> None:
        self._task = asyncio.get_running_loop().create_task(loop, name=name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
