"""With AGENTADAPTER_LOG_PERSONAL_DATA=mask the server's log lines carry no personal data; without, they are as logged."""

from __future__ import annotations

import io
import logging

import pytest

from agentadapter.compliance.logs import PersonalDataLogFilter
from server.conftest import AppFactory

LINE = "user jane.doe@example.com paid with 4111 1111 1111 1111 from %s"


def _remove_our_filters() -> None:
    for handler in logging.getLogger("agentadapter").handlers:
        for found in [f for f in handler.filters if isinstance(f, PersonalDataLogFilter)]:
            handler.removeFilter(found)


@pytest.mark.parametrize("setting", ["mask", "keep"])
async def test_log_lines(
    make_api: AppFactory,
    logs: tuple[io.StringIO, pytest.LogCaptureFixture],
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
) -> None:
    stream, _ = logs
    monkeypatch.setenv("AGENTADAPTER_LOG_PERSONAL_DATA", setting)
    try:
        async with make_api():
            logging.getLogger("agentadapter.somewhere").warning(LINE, "192.168.1.20")
    finally:
        _remove_our_filters()
    written = stream.getvalue()
    if setting == "mask":
        assert "user [EMAIL] paid with [CARD] from [IP]" in written
        assert "jane.doe@example.com" not in written and "192.168.1.20" not in written
    else:
        assert "jane.doe@example.com" in written
