"""What the Redis-backed parts share: naming a client in messages, and stopping pub/sub listeners.

Every part that takes "a URL or a ready client" (the bus, the budget store, the reliability store)
says in its errors which Redis it means; a client handed in has no URL, so it is described from its
connection pool (never with a password).

redis-py's ``PubSub.get_message(timeout=...)`` can swallow the ``CancelledError`` of a task that is
cancelled while it waits (the read is abandoned and ``None`` returned), so a listener looping on it
never ends and a shutdown that awaits it waits forever - a server that failed to bind its port then
ignored SIGTERM. :func:`next_pubsub_message` restores the cancellation; :func:`stop_task` bounds the
wait on any background task at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["describe_client", "next_pubsub_message", "stop_task"]

logger = logging.getLogger("agentadapter.redis")


def describe_client(client: Any) -> str:
    """``redis://host:port/db`` of a ``redis.asyncio.Redis`` client, from its connection pool."""
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


async def next_pubsub_message(pubsub: Any, timeout: float) -> Any:
    """``pubsub.get_message(timeout=timeout)``, raising ``CancelledError`` if the task was cancelled
    meanwhile (redis-py may return ``None`` instead, which would keep a listener loop alive)."""
    message = await pubsub.get_message(timeout=timeout)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return message


async def stop_task(task: asyncio.Task[Any] | None, *, timeout_s: float = 5.0) -> None:
    """Cancel ``task`` and wait for it, at most ``timeout_s`` seconds in all.

    The cancellation is repeated while the task lives (a library may swallow one); a task still
    running at the deadline is left behind with a warning rather than holding the shutdown.
    """
    if task is None or task.done():
        if task is not None and not task.cancelled() and task.exception() is not None:
            logger.warning("background task %s had failed: %r", task.get_name(), task.exception())
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not task.done():
        task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            logger.warning("background task %s did not stop within %.1f s of being cancelled; left behind",
                           task.get_name(), timeout_s)
            return
        await asyncio.wait([task], timeout=min(0.2, remaining))
    if not task.cancelled() and task.exception() is not None:
        logger.warning("background task %s failed while stopping: %r", task.get_name(), task.exception())
