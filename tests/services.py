"""Real services the tests use, and how a test gets one or is skipped (or failed, under CI).

Tests run against real servers (Redis, and later PostgreSQL and RabbitMQ), never mocks of them. On a
developer's machine a missing server skips the tests that need it, with the reason; under ``CI=true``
a missing server is a failure, because CI is where we promise those tests ran.
"""

from __future__ import annotations

import functools
import os

import pytest

__all__ = ["DEFAULT_TEST_REDIS_URL", "redis_url_or_skip"]

#: The Redis the tests use unless AGENTADAPTER_TEST_REDIS_URL says otherwise (db 15: scratch space).
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@functools.lru_cache(maxsize=8)
def _redis_problem(url: str) -> str | None:
    """Why the Redis server at ``url`` cannot be used, or None if it answers PING."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install -e '.[dev,redis]')"
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def redis_url_or_skip() -> str:
    """The test Redis URL if its server answers; otherwise skip the test (fail it under CI=true)."""
    url = os.environ.get("AGENTADAPTER_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    problem = _redis_problem(url)
    if problem is not None:
        message = (
            f"Redis at {url} is not reachable ({problem}); start it (e.g. `redis-server` or .ci/run) "
            "or point AGENTADAPTER_TEST_REDIS_URL at one"
        )
        if _in_ci():
            pytest.fail(f"{message} - under CI a missing service is a failure", pytrace=False)
        pytest.skip(message)
    return url
