"""The application layer's errors: what a request asked that cannot be done, in the caller's words.

Every face reads them its own way - the API maps each class to one HTTP status
(:mod:`agentadapter.server.errors`), the CLI prints the message and exits, a worker fails the run
with it - so they carry what any face needs: a message that says what happened and what to do, a
stable ``code``, the ``param`` at fault and ``details``. They derive from the project's root error
(the whole tree is drawn in :mod:`agentadapter.errors`)::

    AgentAdapterError
     └── ServiceError             code, param, details
          ├── InvalidInput        the input (or the stored data it names) is not acceptable   (API: 422)
          ├── NotAllowed          the caller may not do this                                    (API: 403)
          ├── NotFound            no such resource for this caller                              (API: 404)
          ├── Conflict            the resource's state does not allow it                        (API: 409)
          ├── PaymentRequired     the tenant's credit does not cover it                         (API: 402)
          └── Unavailable         a part the service needs does not answer now; retry_after_s  (API: 503)

The store's own errors (``RecordNotFound``, ``RecordConflict``, ...) and the library's stay what they
are; the faces map those too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentadapter.errors import AgentAdapterError

__all__ = ["Conflict", "InvalidInput", "NotAllowed", "NotFound", "PaymentRequired", "ServiceError", "Unavailable"]


class ServiceError(AgentAdapterError):
    """What the application layer refuses: a message for the caller, a stable code, the field at fault."""

    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.details = dict(details) if details else None


class InvalidInput(ServiceError):
    """The input - or stored data the request names - is not acceptable; ``param`` names the field."""

    default_code = "invalid_value"


class NotAllowed(ServiceError):
    """The caller may not do this (its role, scopes or the operator's settings)."""

    default_code = "insufficient_permissions"


class NotFound(ServiceError):
    """No such resource for this caller (another tenant's looks the same)."""

    default_code = "not_found"


class Conflict(ServiceError):
    """The resource's state does not allow the change (a run that has already ended, a name taken)."""

    default_code = "conflict"


class PaymentRequired(ServiceError):
    """The tenant's credit does not cover what it asks."""

    default_code = "insufficient_credits"


class Unavailable(ServiceError):
    """A part the service needs (the broker, Redis, the server shutting down) cannot take the request
    now; retrying after ``retry_after_s`` may succeed."""

    default_code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 details: Mapping[str, Any] | None = None, retry_after_s: int = 5) -> None:
        super().__init__(message, code=code, param=param, details=details)
        self.retry_after_s = retry_after_s
