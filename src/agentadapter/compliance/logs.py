"""Personal data kept out of log lines: a logging filter that masks what the detectors find.

:func:`mask_logs` adds a :class:`PersonalDataLogFilter` to the handlers of the ``agentadapter`` logger
(the ones ``configure_logging`` installs), so every record they write - whichever module logged it -
has its message masked (``[EMAIL]``, ``[PHONE]``, ...). The server installs it when the operator sets
``AGENTADAPTER_LOG_PERSONAL_DATA=mask``; hashing is not offered here, since a log has no tenant's key.
"""

from __future__ import annotations

import logging

from agentadapter.compliance.anonymize import Anonymizer, PiiPolicy

__all__ = ["PersonalDataLogFilter", "mask_logs"]


class PersonalDataLogFilter(logging.Filter):
    """Masks personal data in each record's message (never drops a record)."""

    def __init__(self, policy: PiiPolicy | None = None) -> None:
        super().__init__()
        self.policy = policy or PiiPolicy("mask")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: leave it to the handler's error path
            return True
        masked = Anonymizer(self.policy).text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def mask_logs(policy: PiiPolicy | None = None, *, logger: str = "agentadapter") -> PersonalDataLogFilter:
    """Mask personal data in what the handlers of ``logger`` write; returns the filter (to remove it)."""
    found = PersonalDataLogFilter(policy)
    # No handler of ours (a library user's logging): the root logger's handlers write our records.
    handlers = logging.getLogger(logger).handlers or logging.getLogger().handlers
    for handler in handlers:
        if not any(isinstance(f, PersonalDataLogFilter) for f in handler.filters):
            handler.addFilter(found)
    return found
