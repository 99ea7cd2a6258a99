"""The library's exceptions as the gateway's error answers, with OpenAI's statuses.

OpenAI clients pick their exception class from the status (``BadRequestError`` for 400,
``NotFoundError`` for 404, ``RateLimitError`` for 429, ...) and read ``error.message`` /
``error.code`` from the body, so the status matters as much as the text. A provider's own
authentication failure is the server's problem, not the caller's, so it is a 502, never a 401 that
would make the client believe its gateway key is wrong.

The official SDKs retry 408, 409, 429 and 5xx answers unless the answer says ``x-should-retry:
false`` (they read that header first). A failure that the same request will meet again, whoever sends
it, carries that header: the server's own provider key rejected (502 ``upstream_authentication_failed``),
a model its provider does not have (404 ``model_not_found`` for an id the client chose; 502
``upstream_model_not_found`` for an alias of the server's config, which the client cannot fix), a
route whose every target failed that way. Transient failures (rate limits, overload, timeouts,
connection errors) leave the header out and the SDK's policy decides.
"""

from __future__ import annotations

import math
from typing import Any

from agentadapter.llm.errors import (
    AgentAdapterError,
    AllTargetsFailedError,
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CapabilityError,
    CircuitOpenError,
    ConfigurationError,
    ContentFilterError,
    ContextWindowExceededError,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    StreamInterruptedError,
)
from agentadapter.llm.errors import APIError as ProviderError
from agentadapter.server.errors import HTTPProblem, outage_error

__all__ = ["NO_RETRY", "gateway_error"]

NO_RETRY = {"x-should-retry": "false"}
"""What the official SDKs read before their own retry rules: this failure will happen again."""


def _retry_after(seconds: float | None) -> dict[str, str] | None:
    return {"Retry-After": str(max(1, math.ceil(seconds)))} if seconds is not None else None


def gateway_error(exc: AgentAdapterError, model: str, *, operator_model: bool = False) -> HTTPProblem:
    """The answer for a call to ``model`` that failed with ``exc``. ``operator_model``: ``model`` is an
    alias or route of the server's config (a provider's refusal of it is the operator's to fix)."""
    outage = outage_error(exc, f"a gateway call to {model}")  # Redis away (budgets): a 503, details logged
    if outage is not None:
        return outage
    message = str(exc)
    if isinstance(exc, AllTargetsFailedError):
        attempts = [a.to_dict() for a in exc.attempts]
        retry = [e.retry_after for e in exc.errors if isinstance(e, RateLimitError) and e.retry_after is not None]
        if exc.errors and all(isinstance(e, RateLimitError) for e in exc.errors):
            return HTTPProblem(429, message, type="rate_limit_error", code="rate_limit_exceeded",
                            details={"attempts": attempts}, headers=_retry_after(min(retry) if retry else None))
        lasting = bool(exc.errors) and not any(getattr(e, "retryable", False) for e in exc.errors)
        return HTTPProblem(502, message, type="api_error", code="all_targets_failed", details={"attempts": attempts},
                           headers=NO_RETRY if lasting else None)
    if isinstance(exc, InsufficientCreditsError):
        # The same answer as the API's generic handler (server/errors.py), which the route leaves
        # this error to; a stream that already started reports it here.
        return HTTPProblem(402, message, type="billing_error", code="insufficient_credits",
                        details={"balance_usd": exc.balance_usd, "needed_usd": exc.needed_usd})
    if isinstance(exc, BudgetExceededError):
        details: dict[str, Any] = {"scope": exc.scope, "limit_usd": exc.limit_usd, "spent_usd": exc.spent_usd}
        return HTTPProblem(429, message, type="insufficient_quota", code="budget_exceeded", details=details)
    if isinstance(exc, CircuitOpenError):
        return HTTPProblem(503, message, type="api_error", code="circuit_open", details={"target": exc.target},
                        headers=_retry_after(exc.retry_in))
    if isinstance(exc, InvalidRequestError | CapabilityError):
        code = "unsupported_capability" if isinstance(exc, CapabilityError) else "invalid_request"
        return HTTPProblem(400, message, code=code)
    if isinstance(exc, ConfigurationError):
        return HTTPProblem(400, message, code="model_not_available", param="model")
    if isinstance(exc, ProviderError):
        return _provider_error(exc, model, operator_model)
    return HTTPProblem(502, message, type="api_error", code="upstream_error")


def _provider_error(exc: ProviderError, model: str, operator_model: bool) -> HTTPProblem:
    message = str(exc)
    details = {"provider": exc.provider, "model": exc.model, "upstream_status": exc.status}
    if isinstance(exc, RateLimitError):
        return HTTPProblem(429, message, type="rate_limit_error", code="rate_limit_exceeded", details=details,
                        headers=_retry_after(exc.retry_after))
    if isinstance(exc, APITimeoutError):
        return HTTPProblem(504, message, type="api_error", code="upstream_timeout", details=details)
    if isinstance(exc, ContextWindowExceededError):
        return HTTPProblem(400, message, code="context_length_exceeded", param="messages", details=details)
    if isinstance(exc, ContentFilterError):
        return HTTPProblem(400, message, code="content_filter", details=details)
    if isinstance(exc, BadRequestError):
        return HTTPProblem(400, message, code="upstream_bad_request", details=details)
    if isinstance(exc, NotFoundError):
        if operator_model:
            return HTTPProblem(502, f"{model!r} is configured on this server with a model its provider does not have: "
                                    f"{message}; the server's operator must fix agentadapter.yaml", type="api_error",
                               code="upstream_model_not_found", details=details, headers=NO_RETRY)
        return HTTPProblem(404, f"model {model!r} was not found by its provider: {message}", code="model_not_found",
                           param="model", details=details, headers=NO_RETRY)
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return HTTPProblem(502, f"the provider refused the provider key the gateway called it with (not your gateway "
                                f"key): {message}; fix the stored provider key (/v1/provider-keys) or ask the "
                                "server's operator to fix theirs; retrying will not help",
                           type="api_error", code="upstream_authentication_failed", details=details, headers=NO_RETRY)
    if isinstance(exc, OverloadedError):
        return HTTPProblem(503, message, type="api_error", code="upstream_overloaded", details=details)
    if isinstance(exc, APIConnectionError | StreamInterruptedError):
        return HTTPProblem(502, message, type="api_error", code="upstream_unreachable", details=details)
    return HTTPProblem(502, message, type="api_error", code="upstream_error", details=details)
