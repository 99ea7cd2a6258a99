"""Structured logs: JSON lines through structlog, with secrets redacted whatever the level.

AgentAdapter's modules log through stdlib loggers from :func:`get_logger` (names under
``agentadapter.``), passing structured fields in ``extra=``. Every such logger carries
:class:`RedactingFilter`, so a record is cleaned before any handler sees it: fields whose name
says they hold a secret (``api_key``, ``authorization``, ``x-api-key``, ...) are masked, every
API key the process has been given (:func:`register_secret`, called when a backend is configured)
is replaced wherever it appears in a message or field, and so is anything key-shaped (provider key
formats, bearer tokens, URL passwords: :mod:`agentadapter.observability.redact`), a safety net
behind the redaction of provider errors where they are made. As a library we add no handler;
:func:`configure_logging` (called by the CLI and the server, or by you) installs structlog's JSON
rendering at ``AGENTADAPTER_LOG_LEVEL``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import IO, Any

from agentadapter.observability.redact import MASK, SENSITIVE_KEYS, redact, redact_text, register_secret

# The masking itself lives in observability.redact (errors and stored runs use it too); these names
# stay importable from here.
__all__ = ["MASK", "SENSITIVE_KEYS", "RedactingFilter", "configure_logging", "get_logger", "redact",
           "redact_text", "register_secret"]

# The standard LogRecord attributes; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Cleans a record's message, arguments and extra fields before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True  # the logger's filter already cleaned it; the handler's need not again
        record._redacted = True
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        for name, value in list(vars(record).items()):
            if name not in _RECORD_FIELDS and name != "_redacted":
                setattr(record, name, redact(value, name))
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """A logger under ``agentadapter.`` that redacts secrets from everything it emits."""
    logger = logging.getLogger(name if name.startswith("agentadapter") else f"agentadapter.{name}")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def _redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    # The record's own fields were cleaned by RedactingFilter; this catches what the processors
    # added since (a formatted traceback can quote a key).
    for name in ("exception", "event", "stack"):
        value = event_dict.get(name)
        if isinstance(value, str):
            event_dict[name] = redact_text(value)
    return event_dict


def _extra_fields(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                event_dict.setdefault(name, value)
    return event_dict


def _sentence(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """``warning: <the message>`` and any extra fields in brackets: a log line for a person at a terminal."""
    level = str(event_dict.pop("level", "info"))
    text = str(event_dict.pop("event", ""))
    for name in ("logger", "timestamp"):
        event_dict.pop(name, None)
    exception = event_dict.pop("exception", None)
    if event_dict:
        text += " (" + ", ".join(f"{name}={value}" for name, value in event_dict.items()) + ")"
    if exception:
        text += "\n" + str(exception)
    return f"{level}: {text}"


def _formatter(*, json: bool, text: bool) -> logging.Formatter:
    import structlog

    renderer: Any = (
        _sentence if text
        else structlog.processors.JSONRenderer() if json else structlog.processors.KeyValueRenderer()
    )
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            _extra_fields,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_processor,  # what the processors above added (an exception's text) is cleaned too
            renderer,
        ],
    )


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that builds its structlog formatter on its first record.

    A command that logs nothing (most CLI runs, at the default WARNING level) never imports structlog.
    """

    def __init__(self, stream: IO[str], *, json: bool, text: bool) -> None:
        super().__init__(stream)
        self._style = {"json": json, "text": text}
        self._agentadapter = True

    def format(self, record: logging.LogRecord) -> str:
        if self.formatter is None:
            self.setFormatter(_formatter(**self._style))
        return super().format(record)


def configure_logging(level: str | int | None = None, *, stream: IO[str] | None = None, json: bool = True,
                      text: bool = False) -> None:
    """Render AgentAdapter's logs as JSON lines (key=value with ``json=False``; sentences with ``text=True``).

    ``level`` defaults to ``AGENTADAPTER_LOG_LEVEL`` (INFO). ``text=True`` writes each record as a
    sentence for a person (``warning: model 'x/y' is not in the catalog; ...``), as the CLI does on a
    terminal. Only the ``agentadapter`` logger tree is configured; the application's own logging is
    left alone.
    """
    resolved = level if level is not None else os.environ.get("AGENTADAPTER_LOG_LEVEL", "INFO")
    numeric = logging.getLevelName(resolved.upper()) if isinstance(resolved, str) else resolved
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {resolved!r}; use DEBUG, INFO, WARNING or ERROR")
    handler = _Handler(stream or sys.stderr, json=json, text=text)
    handler.addFilter(_FILTER)
    root = logging.getLogger("agentadapter")
    for existing in list(root.handlers):
        if getattr(existing, "_agentadapter", False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric)
    root.propagate = False
