"""The compliance tests run the real app on SQLite and PostgreSQL, as the server tests do (their fixtures)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentadapter.service.compliance import set_consent_hook
from agentadapter.store.compliance import forget_policy
from server.conftest import any_api, api, cli, logs, make_api, template_dir  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def _fresh_compliance_state() -> Iterator[None]:
    """No consent service and no cached policy carried from one test into the next."""
    set_consent_hook(None)
    forget_policy()
    yield
    set_consent_hook(None)
    forget_policy()
