"""What the Redis-backed parts share: how to name a Redis client in messages and logs.

Every part that takes "a URL or a ready client" (the bus, the budget store, the reliability store)
says in its errors which Redis it means; a client handed in has no URL, so it is described from its
connection pool (never with a password).
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe_client"]


def describe_client(client: Any) -> str:
    """``redis://host:port/db`` of a ``redis.asyncio.Redis`` client, from its connection pool."""
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
