"""Server-Sent Events: run events as ``id: <seq>`` / ``event: <type>`` / ``data: <json>`` frames.

``id`` is the event's ``seq``, so a client that reconnects with ``Last-Event-ID`` (browsers'
``EventSource`` do it by themselves) resumes right after the last event it got. A comment line is
sent every ``AGENTADAPTER_SSE_HEARTBEAT_S`` seconds while nothing happens, so proxies and load
balancers keep an idle stream open; the events are read by a separate task so that a heartbeat
never interrupts the reader. A stream whose events fail ends with an ``error`` frame (the client
reconnects with ``Last-Event-ID``), and the failure is logged for the operator. A stream given a ``stop``
event (the server's drain on SIGTERM) ends cleanly when it is set, after the frame it is sending, so
its client reconnects with ``Last-Event-ID`` (to another instance, behind a load balancer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from agentadapter.orchestrator import RunEvent

__all__ = ["SSE_HEADERS", "format_event", "sse_stream"]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_DONE = object()
_STOP = object()

logger = logging.getLogger("agentadapter.server")


def format_event(event: RunEvent) -> bytes:
    data = json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":"), default=str)
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


async def sse_stream(events: AsyncIterator[RunEvent], *, heartbeat_s: float,
                     stop: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """The frames of ``events``, with heartbeats between them, ending when the events end (or ``stop`` is set)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                await queue.put(event)
        except Exception as exc:  # a failure reading events ends the stream with an error frame
            logger.warning("an SSE event stream failed (%s: %s); the client got an error frame", type(exc).__name__,
                           exc)
            await queue.put(exc)
        finally:
            await queue.put(_DONE)

    loop = asyncio.get_running_loop()
    reader = loop.create_task(pump())
    stopped = loop.create_task(stop.wait()) if stop is not None else None
    try:
        yield b"retry: 2000\n\n"
        while True:
            if stopped is not None and stopped.done():
                return  # between two frames: the client resumes elsewhere from the last id it got
            try:
                item = await _next(queue, heartbeat_s, stopped)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is _STOP:
                return
            if item is _DONE:
                return
            if isinstance(item, Exception):
                # What failed (which server, what it said) is in the operator's log, not in the frame.
                text = "the event stream was interrupted; reconnect with Last-Event-ID to resume"
                message = json.dumps({"error": {"type": "api_error", "message": text,
                                                "code": "stream_failed", "param": None, "details": None}})
                yield f"event: error\ndata: {message}\n\n".encode()
                return
            yield format_event(item)
    finally:
        if stopped is not None:
            stopped.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def _next(queue: asyncio.Queue[Any], timeout: float, stopped: asyncio.Task[Any] | None) -> Any:
    """The next queued item, ``_STOP`` once ``stopped`` is done, or TimeoutError after ``timeout`` seconds."""
    if not queue.empty():  # the common case on a busy run: no waiter, no timer
        return queue.get_nowait()
    if stopped is None:
        return await asyncio.wait_for(queue.get(), timeout)
    getter = asyncio.ensure_future(queue.get())
    try:
        done, _ = await asyncio.wait({getter, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        getter.cancel()
        raise
    if getter in done:
        return getter.result()
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    if getter.done() and not getter.cancelled():  # it got an item while being cancelled: keep it
        return getter.result()
    if stopped in done:
        return _STOP
    raise TimeoutError
