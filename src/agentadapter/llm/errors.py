"""The adapter's errors, and the translation of provider errors into them.

The whole tree, every layer's errors included, is drawn once in :mod:`agentadapter.errors`, whose
root and cross-cutting bases (:class:`AgentAdapterError`, :class:`ConfigurationError`,
:class:`InvalidRequestError`) this module re-exports, so ``from agentadapter.llm.errors import
ConfigurationError`` keeps working. Defined here are the errors the adapter raises: a backend's
failures (:class:`APIError` and its subclasses, one per status), refusals before sending
(:class:`CircuitOpenError`, :class:`BudgetExceededError` - with :class:`InsufficientCreditsError`,
which a spend guard raises through the facade's guard seam - and :class:`CapabilityError`),
:class:`OutputValidationError` and :class:`AllTargetsFailedError`. The agent loop's errors
(``GuardrailTripped``, ``MaxTurnsExceeded``) live in :mod:`agentadapter.agents.errors`.

An :class:`APIError`'s message, body and headers are cleaned of secrets when it is made (the
provider's echo of a key, a bearer token, a URL password: :mod:`agentadapter.observability.redact`).
``retryable`` says whether the retry policy may try the same call again. Provider errors are mapped
at the edge by :func:`error_from_response` and :func:`error_from_event` (``raise ... from exc``
where there is a foreign exception), so callers only ever catch our classes.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

# Re-exported: the root and the cross-cutting bases live below every layer.
from agentadapter.errors import AgentAdapterError as AgentAdapterError
from agentadapter.errors import ConfigurationError as ConfigurationError
from agentadapter.errors import InvalidRequestError as InvalidRequestError
from agentadapter.observability.redact import redact, redact_text


class APIError(AgentAdapterError):
    """A backend call failed. Carries what is known of the failure."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        code: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        # Providers echo keys back ("Incorrect API key provided: sk-proj-..."), and a connection
        # error can quote a URL with ?key=: every provider failure becomes one of these classes, so
        # masking here keeps keys out of everything downstream (API answers, logs, stored runs, events).
        message = redact_text(message)
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.body = redact(body)
        self.headers: dict[str, str] = redact({k.lower(): v for k, v in (headers or {}).items()})
        self.request_id = request_id
        self.code = code
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class APIConnectionError(APIError):
    """The backend could not be reached (DNS, refused connection, reset)."""

    retryable = True


class APITimeoutError(APIConnectionError):
    """The backend did not answer within the timeout or the request's deadline."""


class StreamInterruptedError(APIError):
    """A stream broke off or reported an error after it had started."""

    retryable = True


class InvalidResponseError(APIError):
    """The backend answered with a success status, but its body is not JSON, or not the shape its API
    promises: usually a base URL that points at something else (a proxy's HTML page, another API).

    Not retried on the same target (it would answer the same); a route moves on to its next target.
    """


class APIStatusError(APIError):
    """The backend answered with an error status."""


class BadRequestError(APIStatusError):
    """The backend rejected the request as malformed (400/422)."""


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus the requested output) does not fit the model's context window."""


class ContentFilterError(BadRequestError):
    """The provider's safety system refused the request or its answer."""


class AuthenticationError(APIStatusError):
    """The API key is missing, wrong or revoked (401)."""


class PermissionDeniedError(APIStatusError):
    """The key is valid but may not use this model or resource (403)."""


class NotFoundError(APIStatusError):
    """The model or endpoint does not exist (404)."""


class ConflictError(APIStatusError):
    """A transient conflict (409); the official SDKs retry it."""

    retryable = True


class RateLimitError(APIStatusError):
    """Too many requests or tokens (429). ``retry_after`` is the server's hint in seconds, if any."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        if retry_after is None:
            retry_after = parse_retry_after(self.headers)
        if retry_after is None:
            retry_after = _retry_info_delay(self.body)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """The backend failed on its side (5xx)."""

    retryable = True


class OverloadedError(ServerError):
    """The backend is overloaded (Anthropic's 529, 503s, ``overloaded_error`` events)."""


class CircuitOpenError(AgentAdapterError):
    """A circuit breaker refused the call without sending it; another target may still answer."""

    retryable = True

    def __init__(self, message: str, *, target: str | None = None, retry_in: float | None = None) -> None:
        super().__init__(message)
        self.target = target
        self.retry_in = retry_in


class BudgetExceededError(AgentAdapterError):
    """A budget refused the call before it was sent."""

    def __init__(
        self, message: str, *, scope: str | None = None, limit_usd: float | None = None,
        spent_usd: float | None = None,
    ) -> None:
        super().__init__(message)
        self.scope = scope
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd


class InsufficientCreditsError(BudgetExceededError):
    """The tenant's credit balance cannot cover the call's estimated cost; nothing was sent."""

    def __init__(self, message: str, *, balance_usd: float = 0.0, needed_usd: float = 0.0) -> None:
        super().__init__(message, scope="credits", limit_usd=balance_usd, spent_usd=None)
        self.balance_usd = balance_usd
        self.needed_usd = needed_usd


class UnpricedModelError(BudgetExceededError):
    """A budget applies to the call but the model has no known price, so nothing bounds what it spends.

    ``model`` is the model without a price; ``scope`` the budget that refused it. The ways out: price
    the model (the ``catalog:`` section of the configuration, or ``catalog.override``) or let the
    budget take unpriced calls (``allow_unpriced: true``)."""

    def __init__(self, message: str, *, model: str, scope: str, limit_usd: float) -> None:
        super().__init__(message, scope=scope, limit_usd=limit_usd, spent_usd=None)
        self.model = model


class CapabilityError(AgentAdapterError):
    """The model lacks something the request needs (tools, images, JSON schema, ...)."""


class OutputValidationError(AgentAdapterError):
    """The model's structured output did not validate against the requested schema."""

    def __init__(self, message: str, *, raw: Any = None, errors: Sequence[Any] | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.errors = list(errors or [])


class AllTargetsFailedError(AgentAdapterError):
    """Every target of a route failed; ``errors`` holds each failure in the order tried."""

    def __init__(self, message: str, errors: Sequence[BaseException], *, attempts: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)
        self.attempts = list(attempts)
        """Every target tried, as :class:`~agentadapter.llm.messages.Attempt` records."""

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return any(getattr(e, "retryable", False) for e in self.errors)


# ------------------------------------------------------------------------------ provider translation

_CONTEXT_WINDOW_MARKERS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "input is too long",
    "exceeds the maximum number of tokens",
    "input token count",
    "reduce the length",
    "string_above_max_length",
)
_CONTENT_FILTER_MARKERS = ("content_filter", "content_policy", "content management policy", "safety")
_OVERLOADED_MARKERS = ("overloaded", "unavailable", "capacity")
# Gemini answers a wrong API key with 400 INVALID_ARGUMENT, not 401.
_AUTHENTICATION_MARKERS = ("api key not valid", "api key not found", "api_key_invalid")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None  # neither seconds nor an HTTP date: ignore the hint, back off instead
    return max(0.0, parsed.timestamp() - time.time())


def _retry_info_delay(body: Any) -> float | None:
    """Seconds from a Google ``RetryInfo`` detail (``"retryDelay": "36s"``): Gemini's 429s carry the
    hint in the body, not in a Retry-After header."""
    if isinstance(body, list) and body:
        body = body[0]
    error = body.get("error") if isinstance(body, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    for detail in details if isinstance(details, list) else ():
        delay = detail.get("retryDelay") if isinstance(detail, Mapping) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


def _error_fields(body: Any) -> tuple[str, str | None, str | None]:
    """Pull (message, code, type) from the error bodies providers send."""
    if isinstance(body, list) and body:  # Gemini sometimes wraps the error in a list
        body = body[0]
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            message = error.get("message") or body.get("message") or ""
            code = error.get("code")
            kind = error.get("type") or error.get("status")
            return str(message), (str(code) if code is not None else None), (str(kind) if kind else None)
        if isinstance(error, str):
            return error, None, None
        if "message" in body:
            return str(body["message"]), None, None
    if isinstance(body, str):
        return body[:500], None, None
    return "", None, None


def decode_body(raw: bytes) -> Any:
    """A response body as JSON when it is JSON, else as text."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace")


def _advice(status: int, provider: str) -> str:
    env = f"{provider.upper().replace('-', '_')}_API_KEY"
    return {
        401: f"check the API key ({env} or api_key=...)",
        403: "check that this key may use this model",
        404: "check the model name and base URL",
        429: "slow down, or raise the limit with the provider",
    }.get(status, "see the provider's message above")


def error_from_response(
    status: int,
    body: Any,
    headers: Mapping[str, str],
    *,
    provider: str,
    model: str | None,
) -> APIStatusError:
    """Translate an HTTP error status and body into the most specific error class."""
    message, code, kind = _error_fields(body)
    lowered_headers = {k.lower(): v for k, v in headers.items()}
    request_id = (
        lowered_headers.get("x-request-id")
        or lowered_headers.get("request-id")
        or lowered_headers.get("x-goog-request-id")
        or lowered_headers.get("apim-request-id")
    )
    haystack = f"{message} {code or ''} {kind or ''}".lower()
    error_class: type[APIStatusError]
    if status in (400, 413, 422):
        if any(marker in haystack for marker in _AUTHENTICATION_MARKERS):
            error_class = AuthenticationError
        elif any(marker in haystack for marker in _CONTEXT_WINDOW_MARKERS):
            error_class = ContextWindowExceededError
        elif any(marker in haystack for marker in _CONTENT_FILTER_MARKERS):
            error_class = ContentFilterError
        else:
            error_class = BadRequestError
    elif status == 401:
        error_class = AuthenticationError
    elif status == 403:
        error_class = PermissionDeniedError
    elif status == 404:
        error_class = NotFoundError
    elif status == 408:
        error_class = ServerError  # a server-side timeout; the SDKs retry it
    elif status == 409:
        error_class = ConflictError
    elif status == 429:
        # Gemini's RESOURCE_EXHAUSTED and every "quota" 429 land here too.
        error_class = RateLimitError
    elif status == 529 or (status >= 500 and any(m in haystack for m in _OVERLOADED_MARKERS)):
        error_class = OverloadedError
    elif status >= 500:
        error_class = ServerError
    else:
        error_class = BadRequestError
    where = f"{provider}" + (f", model {model}" if model else "")
    detail = message or (body if isinstance(body, str) else "") or "no error message"
    advice = _advice(401 if error_class is AuthenticationError else status, provider)
    text = f"{error_class.__name__}: {provider} answered HTTP {status}: {detail} ({where}); {advice}"
    retryable: bool | None = None
    should_retry = lowered_headers.get("x-should-retry")
    if should_retry == "true":
        retryable = True
    elif should_retry == "false":
        retryable = False
    return error_class(
        text,
        provider=provider,
        model=model,
        status=status,
        body=body,
        headers=headers,
        request_id=request_id,
        code=code or kind,
        retryable=retryable,
    )


# An error that arrives inside a stream, after HTTP 200, keyed by the provider's error type.
_EVENT_TYPE_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "api_error": 500,
    "server_error": 500,
    "internal_server_error": 500,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "resource_exhausted": 429,
    "unavailable": 503,
    "internal": 500,
}


def error_from_event(body: Any, *, provider: str, model: str | None) -> APIError:
    """Translate an error event sent mid-stream (after HTTP 200)."""
    message, code, kind = _error_fields(body)
    status = None
    for key in (kind, code):
        if key and key.lower() in _EVENT_TYPE_STATUS:
            status = _EVENT_TYPE_STATUS[key.lower()]
            break
        if key and key.isdigit():
            status = int(key)
            break
    if status is None:
        return StreamInterruptedError(
            f"{provider} sent an error in the middle of the stream: {message or body!r} (model {model}); "
            "the call may be retried",
            provider=provider,
            model=model,
            body=body,
            code=code or kind,
        )
    return error_from_response(status, body, {}, provider=provider, model=model)
