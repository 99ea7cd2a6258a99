"""The API fixtures of tests/server (the real app on a real database), for the knowledge tests."""

from __future__ import annotations

from server.conftest import any_api, api, make_api, template_dir  # noqa: F401 - fixtures
