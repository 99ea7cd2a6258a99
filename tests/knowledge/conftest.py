"""The API fixtures of tests/server (the real app on a real database) and the private servers (clamd,
PostgreSQL with pgvector) of the knowledge tests."""

from __future__ import annotations

from knowledge.servers import clamd_server, pgvector_server  # noqa: F401 - fixtures
from server.conftest import any_api, api, make_api, template_dir  # noqa: F401 - fixtures
