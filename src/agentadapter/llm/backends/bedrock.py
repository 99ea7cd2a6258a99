"""The Amazon Bedrock backend (``type: bedrock``): the Converse and ConverseStream APIs, signed with SigV4.

:class:`BedrockBackend` calls ``POST {endpoint}/model/{model-id}/converse`` and, for streams,
``/converse-stream``, whose answer is AWS's binary event stream (``application/vnd.amazon.eventstream``)
rather than server-sent events. It uses botocore for everything AWS-specific and nothing else of it:
:class:`AwsAuth` resolves credentials through botocore's own chain (explicit keys, the environment,
the shared config and credentials files with ``AWS_PROFILE``, assumed roles, web identity, the
container and instance metadata endpoints) and signs each request with ``SigV4Auth``; the event
stream's framing (preludes, headers, CRC checks) is decoded by botocore's ``EventStreamBuffer``.
Requests go through our own :class:`~agentadapter.llm.transport.Transport`, so timeouts, deadlines,
pooling, retries and telemetry are the same as every other backend's (aiobotocore would bring a second
HTTP stack with its own retries, timeouts and error classes). A Bedrock API key
(``AWS_BEARER_TOKEN_BEDROCK``) is sent as a bearer token instead of signing.

Model ids are Bedrock's own: ``bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0``, a cross-region
inference profile (``bedrock/us.anthropic...``, ``eu.``, ``apac.``, ``global.``) or an ARN. The
region comes from the backend's ``region`` option, ``AWS_REGION``, then botocore's own settings
(``AWS_DEFAULT_REGION``, the profile's ``region``). Tokens are counted by Bedrock's ``CountTokens``;
models are listed from the control plane (``ListFoundationModels``, ``ListInferenceProfiles``).
Errors are mapped from AWS's error type (the ``x-amzn-errortype`` header or ``__type``;
``:exception-type`` in a stream) to our tree by :data:`ERROR_TYPES`. The mapping to and from
Converse's JSON is :mod:`.bedrock_mapping`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

from agentadapter.llm.backends.anthropic_mapping import OpenBlock
from agentadapter.llm.backends.base import Backend, BackendConfig, StreamDecoder, elapsed_ms
from agentadapter.llm.backends.bedrock_mapping import (
    REASONING_PROVIDER,
    WireRequest,
    build_request,
    finish_reason,
    output_text,
    parse_response,
    response_details,
    usage_from_wire,
)
from agentadapter.llm.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    InvalidResponseError,
    StreamInterruptedError,
    decode_body,
    error_from_response,
)
from agentadapter.llm.messages import (
    ReasoningPart,
    Request,
    Response,
    StreamAccumulator,
    StreamEvent,
    ToolCallPart,
    parse_tool_arguments,
)
from agentadapter.llm.transport import HTTPRequest, Transport
from agentadapter.observability.redact import register_secrets

__all__ = ["ERROR_TYPES", "AwsAuth", "BedrockBackend", "BedrockStreamDecoder", "bedrock_error"]

_MAX_PROFILE_PAGES = 20

SERVICE = "bedrock"
"""The SigV4 signing name of the Bedrock runtime."""

ERROR_TYPES: dict[str, int] = {
    "throttlingexception": 429,
    "servicequotaexceededexception": 429,
    "toomanyrequestsexception": 429,
    "modelnotreadyexception": 503,
    "serviceunavailableexception": 503,
    "internalserverexception": 500,
    "modelerrorexception": 500,
    "modelstreamerrorexception": 500,
    "modeltimeoutexception": 408,
    "accessdeniedexception": 403,
    "unrecognizedclientexception": 401,
    "invalidsignatureexception": 401,
    "incompletesignatureexception": 401,
    "missingauthenticationtokenexception": 401,
    "expiredtokenexception": 401,
    "resourcenotfoundexception": 404,
    "validationexception": 400,
    "conflictexception": 409,
}
"""AWS error type (lower case) → the status whose class in our tree it is (a throttle is a
:class:`~agentadapter.llm.errors.RateLimitError` whatever status carried it; a bad signature or an
expired session token is an :class:`~agentadapter.llm.errors.AuthenticationError`, though AWS sends 403)."""

_ADVICE: dict[int, str] = {
    401: "check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, the role) or "
         "AWS_BEARER_TOKEN_BEDROCK, and that the session has not expired",
    403: "check that these AWS credentials may call bedrock:InvokeModel on this model, and that the model "
         "is enabled in this region",
    404: "check the model id and region (a cross-region profile is us./eu./apac./global.<model-id>)",
    429: "slow down, or raise the quota in AWS Service Quotas",
}


def bedrock_error(status: int, body: Any, headers: Mapping[str, str], *, provider: str, model: str | None,
                  error_type: str | None = None) -> APIStatusError:
    """The most specific error of our tree for a Bedrock error answer (HTTP or in-stream exception)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    kind = error_type or lowered.get("x-amzn-errortype", "")
    if not kind and isinstance(body, Mapping):
        kind = str(body.get("__type") or "")
    # "ThrottlingException:http://internal.amazon.com/...", "com.amazon.coral#ThrottlingException"
    kind = kind.split(":", 1)[0].rsplit("#", 1)[-1]
    message = ""
    if isinstance(body, Mapping):
        message = str(body.get("message") or body.get("Message") or "")
    elif isinstance(body, str):
        message = body[:500]
    effective = ERROR_TYPES.get(kind.lower(), status)
    wire_body = {"error": {"message": message, "type": kind or None}}
    shaped = error_from_response(effective, wire_body, headers, provider=provider, model=model)
    where = provider + (f", model {model}" if model else "")
    advice = _ADVICE.get(401 if shaped.__class__.__name__ == "AuthenticationError" else effective,
                         "see the provider's message above")
    label = f" {kind}" if kind else ""
    text = (f"{type(shaped).__name__}: {provider} answered HTTP {status}{label}: {message or 'no error message'} "
            f"({where}); {advice}")
    return type(shaped)(
        text, provider=provider, model=model, status=status, body=body, headers=headers,
        request_id=lowered.get("x-amzn-requestid"), code=kind or None,
    )


# ------------------------------------------------------------------------------------ credentials


class AwsAuth:
    """AWS credentials resolved the AWS way (botocore's chain), and SigV4 signing with them.

    The chain runs once, in a worker thread (it may read files or call STS or the instance metadata
    service); refreshable credentials (assumed roles, SSO, instance profiles) are refreshed in a
    thread too, when botocore says they are due. Static credentials are signed with inline.
    """

    def __init__(self, *, region: str | None, profile: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, session_token: str | None = None
                 ) -> None:
        import botocore.session

        self._session = botocore.session.Session(profile=profile) if profile else botocore.session.Session()
        self._explicit = (access_key, secret_key, session_token) if access_key and secret_key else None
        self.region = region or os.environ.get("AWS_REGION") or self._session.get_config_variable("region")
        self.profile = profile
        self._credentials: Any = None
        self._lock = threading.Lock()

    def _resolve(self) -> Any:
        with self._lock:
            if self._credentials is None:
                if self._explicit is not None:
                    from botocore.credentials import Credentials

                    self._credentials = Credentials(*self._explicit)
                else:
                    try:
                        self._credentials = self._session.get_credentials()
                    except Exception as exc:  # botocore's ProfileNotFound, a broken config file, STS...
                        raise ConfigurationError(
                            f"AWS credentials could not be loaded: {exc}; check AWS_PROFILE and ~/.aws/config"
                        ) from exc
                if self._credentials is None:
                    raise ConfigurationError(
                        "no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
                        "(a profile in ~/.aws/config, with a role if you like), run on an AWS role, or set "
                        "AWS_BEARER_TOKEN_BEDROCK"
                    )
            return self._credentials.get_frozen_credentials()

    async def frozen_credentials(self) -> Any:
        """The current (access key, secret key, token), refreshed off the event loop when due."""
        credentials = self._credentials
        if credentials is None or getattr(credentials, "refresh_needed", lambda: False)():
            return await asyncio.to_thread(self._resolve)
        return credentials.get_frozen_credentials()

    def sign(self, credentials: Any, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` plus the SigV4 ones (``Authorization``, ``X-Amz-Date``, ``X-Amz-Security-Token``)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        aws_request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(credentials, SERVICE, self.region).add_auth(aws_request)
        return {str(k): str(v) for k, v in aws_request.headers.items()}


# ------------------------------------------------------------------------------------- backend


class BedrockBackend(Backend):
    """Models on Amazon Bedrock through the Converse API.

    Options (``backends:`` entries or :class:`BackendConfig.options`): ``region``, ``profile``,
    ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token``. ``base_url`` (or
    ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``) replaces the regional endpoint, for a VPC endpoint or a proxy.
    """

    type_name = "bedrock"

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None = None) -> None:
        super().__init__(config, transport=transport)
        options = config.options
        # Keys given in the config file never reach a log line or an error body.
        register_secrets([options.get("aws_secret_access_key"), options.get("aws_session_token")])
        self.bearer_token = config.api_key
        self.auth: AwsAuth | None = None
        region = options.get("region")
        try:
            if not self.bearer_token:
                self.auth = AwsAuth(
                    region=region, profile=options.get("profile") or None,
                    access_key=options.get("aws_access_key_id"), secret_key=options.get("aws_secret_access_key"),
                    session_token=options.get("aws_session_token"),
                )
                region = self.auth.region
            else:
                region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        except ImportError:
            self.setup_problem = "AWS Bedrock needs botocore: pip install 'agentadapter[bedrock]'"
            region = None
        except Exception as exc:  # botocore refuses a profile that does not exist when the session is made
            self.setup_problem = f"the AWS configuration could not be read: {exc}; check AWS_PROFILE and ~/.aws/config"
        self.region: str | None = region
        if config.base_url:
            self.endpoint: str | None = config.base_url.rstrip("/")
        elif region:
            self.endpoint = f"https://bedrock-runtime.{region}.amazonaws.com"
        else:
            self.endpoint = None
            self.setup_problem = self.setup_problem or (
                "no AWS region for Bedrock; set AWS_REGION (or region: under the backend in agentadapter.yaml)"
            )

    # ---------------------------------------------------------------------------- the contract

    async def generate(self, request: Request) -> Response:
        started = time.perf_counter()
        wire = self._wire(request)
        http_request = await self._signed(request, "converse", wire.body, accept="application/json")
        body, headers = await self._send(http_request)
        if not isinstance(body, Mapping) or "output" not in body:
            raise InvalidResponseError(
                f"{self.name} answered with JSON that is not a Converse answer (model {request.model}): "
                f"{str(body)[:200]!r}; check the base URL", provider=self.name, model=request.model, body=body,
            )
        answer = parse_response(body, provider=self.name, model=request.model, wire=wire,
                                response_id=headers.get("x-amzn-requestid", ""))
        answer.latency_ms = elapsed_ms(started)
        return answer

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        wire = self._wire(request)
        http_request = await self._signed(request, "converse-stream", wire.body,
                                          accept="application/vnd.amazon.eventstream")
        decoder = BedrockStreamDecoder(self.name, request.model, wire)
        async with contextlib.aclosing(self._events(http_request, decoder)) as events:
            async for event in events:
                if event.response is not None:
                    event.response.latency_ms = elapsed_ms(started)
                yield event

    # -------------------------------------------------------------------------------- plumbing

    def _wire(self, request: Request) -> WireRequest:
        self.check_setup(request.model)
        return build_request(request, capabilities=self.capabilities(request.model), provider=self.name)

    async def _signed(self, request: Request, action: str, body: Mapping[str, Any], *, accept: str) -> HTTPRequest:
        assert self.endpoint is not None
        # The model id is one path segment: '/' in an ARN is escaped. ':' (in "...-v1:0") is left as is,
        # as HTTP clients normalize it: the signature must cover the path exactly as it is sent.
        url = f"{self.endpoint}/model/{quote(request.model, safe=':')}/{action}"
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return await self._signed_http("POST", url, content, accept=accept, request=request)

    async def _signed_http(self, method: str, url: str, content: bytes, *, accept: str,
                           request: Request | None = None) -> HTTPRequest:
        headers = {"accept": accept}
        if method != "GET":
            headers["content-type"] = "application/json"
        if self.bearer_token:
            headers["authorization"] = f"Bearer {self.bearer_token}"
        else:
            assert self.auth is not None
            credentials = await self.auth.frozen_credentials()
            headers = self.auth.sign(credentials, method, url, content, headers)
        http_request = self.http_request(method, url, request, headers=headers)
        if content:
            http_request.content = content
        return http_request

    async def _send(self, http_request: HTTPRequest) -> tuple[Any, dict[str, str]]:
        """Send; the decoded JSON answer and the headers, or the Bedrock error it carries."""
        response = await self.transport.send(http_request)
        self._tell_listeners(response.headers)
        if response.status >= 400:
            raise bedrock_error(response.status, decode_body(response.content), response.headers,
                                provider=self.name, model=http_request.model)
        try:
            return response.json(), response.headers
        except ValueError as exc:
            raise self._not_json(response.content, http_request.model or "-", response.status) from exc

    # ------------------------------------------------------------------------ counting, listing

    async def count_tokens(self, request: Request) -> int:
        """Input tokens as Bedrock counts them (``CountTokens``, free; Claude models offer it)."""
        body = self._wire(request).body
        converse = {key: body[key] for key in ("messages", "system", "toolConfig", "additionalModelRequestFields")
                    if key in body}
        answer, _ = await self._send(await self._signed(request, "count-tokens", {"input": {"converse": converse}},
                                                     accept="application/json"))
        tokens = answer.get("inputTokens") if isinstance(answer, Mapping) else None
        if not isinstance(tokens, int):
            raise InvalidResponseError(
                f"{self.name} answered CountTokens without inputTokens (model {request.model}): {str(answer)[:200]}",
                provider=self.name, model=request.model, body=answer,
            )
        return tokens

    async def list_models(self) -> list[str]:
        """The foundation models with on-demand text output, and the inference profiles, of this region
        (Bedrock's control plane: ``ListFoundationModels`` and ``ListInferenceProfiles``)."""
        self.check_setup()
        control = self.config.options.get("control_url") or os.environ.get("AWS_ENDPOINT_URL_BEDROCK") or (
            f"https://bedrock.{self.region}.amazonaws.com")
        control = str(control).rstrip("/")
        found: set[str] = set()
        listing, _ = await self._send(await self._signed_http(
            "GET", f"{control}/foundation-models?byOutputModality=TEXT", b"", accept="application/json"))
        for summary in (listing.get("modelSummaries") or []) if isinstance(listing, Mapping) else []:
            if isinstance(summary, Mapping) and "ON_DEMAND" in (summary.get("inferenceTypesSupported") or []):
                found.add(str(summary.get("modelId")))
        token = ""
        for _ in range(_MAX_PROFILE_PAGES):
            query = "?maxResults=1000" + (f"&nextToken={quote(token, safe='')}" if token else "")
            page, _ = await self._send(await self._signed_http("GET", f"{control}/inference-profiles{query}", b"",
                                                            accept="application/json"))
            if not isinstance(page, Mapping):
                break
            found.update(str(p["inferenceProfileId"]) for p in page.get("inferenceProfileSummaries") or []
                         if isinstance(p, Mapping) and "inferenceProfileId" in p)
            token = str(page.get("nextToken") or "")
            if not token:
                break
        return sorted(found)

    def _tell_listeners(self, headers: Mapping[str, str]) -> None:
        for listener in self.header_listeners:
            listener(headers)

    def _not_json(self, content: bytes, model: str, status: int) -> InvalidResponseError:
        return InvalidResponseError(
            f"{self.name} answered HTTP {status} with a body that is not JSON (model {model}): {content[:200]!r}; "
            "check the base URL", provider=self.name, model=model, status=status, body=content[:2000],
        )

    async def _events(
        self, http_request: HTTPRequest, decoder: BedrockStreamDecoder
    ) -> AsyncGenerator[StreamEvent, None]:
        from botocore.eventstream import EventStreamBuffer, ParserError

        model = http_request.model
        received = False
        try:
            async with self.transport.stream(http_request) as response:
                self._tell_listeners(response.headers)
                if response.status >= 400:
                    raw = await response.aread()
                    raise bedrock_error(response.status, decode_body(raw), response.headers,
                                        provider=self.name, model=model)
                decoder.accumulator.id = response.headers.get("x-amzn-requestid", "")
                buffer = EventStreamBuffer()
                async for chunk in response.aiter_bytes():
                    received = True
                    buffer.add_data(chunk)
                    try:
                        messages = list(buffer)
                    except ParserError as exc:
                        raise StreamInterruptedError(
                            f"{self.name} sent a malformed event stream (model {model}): {exc}",
                            provider=self.name, model=model,
                        ) from exc
                    for message in messages:
                        for event in self._message_events(message, decoder, model):
                            yield event
        except APIConnectionError as exc:
            if not received or isinstance(exc, APITimeoutError):
                raise
            raise self.broken_stream(exc, model) from exc
        for event in decoder.close():
            yield event

    def _message_events(self, message: Any, decoder: BedrockStreamDecoder, model: str | None) -> list[StreamEvent]:
        headers = message.headers
        kind = headers.get(":message-type")
        try:
            payload = json.loads(message.payload) if message.payload else {}
        except ValueError as exc:
            raise StreamInterruptedError(
                f"{self.name} sent a stream event that is not JSON (model {model}): {message.payload[:200]!r}",
                provider=self.name, model=model,
            ) from exc
        if kind == "event":
            return decoder.feed({"event": headers.get(":event-type"), "payload": payload})
        if kind == "exception":
            error_type = str(headers.get(":exception-type", ""))
            raise _stream_error(bedrock_error(500, payload, {}, provider=self.name, model=model,
                                              error_type=error_type))
        if kind == "error":
            body = {"message": headers.get(":error-message", "")}
            raise _stream_error(bedrock_error(500, body, {}, provider=self.name, model=model,
                                              error_type=str(headers.get(":error-code", ""))))
        return []


def _stream_error(error: APIError) -> APIError:
    # An exception sent after HTTP 200 has no status of its own: keep the class, drop the borrowed 500.
    error.status = None
    return error


# ------------------------------------------------------------------------------------ streaming


class BedrockStreamDecoder(StreamDecoder):
    """ConverseStream events → neutral :class:`StreamEvent` s, accumulated into the ``Response`` of ``generate``.

    Fed ``{"event": <:event-type>, "payload": <JSON>}``: ``messageStart``, ``contentBlockStart`` (tool
    uses only; text blocks begin with their first delta), ``contentBlockDelta`` (text, tool input JSON,
    reasoning text / signature / redacted content), ``contentBlockStop``, ``messageStop`` (the stop
    reason) and ``metadata`` (usage, after the stop).
    """

    def __init__(self, provider: str, model: str, wire: WireRequest) -> None:
        self.provider = provider
        self.model = model
        self.wire = wire
        self.accumulator = StreamAccumulator(provider, model)
        self.stop_reason: str | None = None
        self.stopped = False
        self.raw_usage: Mapping[str, Any] | None = None
        self.additional: Any = None
        self.metrics: Any = None
        self._blocks: dict[int, OpenBlock] = {}
        self._real_tool_calls = False

    def feed(self, data: Any) -> list[StreamEvent]:
        event, payload = data["event"], data["payload"]
        if not isinstance(payload, Mapping):
            raise self._broken(f"sent a {event} event that is not an object")
        index = int(payload.get("contentBlockIndex") or 0)
        if event == "contentBlockStart":
            start = payload.get("start") or {}
            use = start.get("toolUse")
            if isinstance(use, Mapping):
                name = str(use.get("name", ""))
                is_output = self.wire.output_tool is not None and name == self.wire.output_tool
                self._blocks[index] = OpenBlock("toolUse", str(use.get("toolUseId", "")), name, is_output=is_output)
                if not is_output:
                    return [self.accumulator.add(StreamEvent("tool_call_delta", index=index,
                                                             call_id=self._blocks[index].call_id, name=name))]
            return []
        if event == "contentBlockDelta":
            return self._delta(index, payload.get("delta") or {})
        if event == "contentBlockStop":
            return self._stop(index)
        if event == "messageStop":
            self.stop_reason = payload.get("stopReason")
            self.additional = payload.get("additionalModelResponseFields")
            self.stopped = True
            return []
        if event == "metadata":
            self.raw_usage = payload.get("usage")
            self.metrics = payload.get("metrics")
            return []
        return []  # messageStart, and event types added after this was written

    def _delta(self, index: int, delta: Mapping[str, Any]) -> list[StreamEvent]:
        acc = self.accumulator
        if "text" in delta:
            self._blocks.setdefault(index, OpenBlock("text"))
            return [acc.add(StreamEvent("text", text=str(delta["text"]), index=index))]
        if "toolUse" in delta:
            block = self._blocks.get(index)
            if block is None or block.kind != "toolUse":
                raise self._broken(f"sent tool input for block {index}, which is not a tool use")
            fragment = str((delta["toolUse"] or {}).get("input", ""))
            block.arguments.append(fragment)
            if block.is_output or not fragment:
                return []
            return [acc.add(StreamEvent("tool_call_delta", index=index, arguments_delta=fragment))]
        if "reasoningContent" in delta:
            self._blocks.setdefault(index, OpenBlock("reasoning"))
            content = delta["reasoningContent"] or {}
            if "redactedContent" in content:
                acc.add_part(ReasoningPart(redacted_data=str(content["redactedContent"]), provider=REASONING_PROVIDER))
                return []
            text = str(content.get("text") or "")
            signature = content.get("signature") or None
            return [acc.add(StreamEvent("reasoning", text=text, signature=signature, index=index))]
        return []

    def _stop(self, index: int) -> list[StreamEvent]:
        block = self._blocks.pop(index, None)
        if block is None or block.kind != "toolUse":
            return []
        arguments = parse_tool_arguments("".join(block.arguments) or "{}", block.name)
        if block.is_output:
            text = output_text(arguments, wrapped=self.wire.output_wrapped)
            return [self.accumulator.add(StreamEvent("text", text=text, index=index))]
        self._real_tool_calls = True
        call = ToolCallPart(id=block.call_id, name=block.name, arguments=arguments)
        return [self.accumulator.add(StreamEvent("tool_call", index=index, tool_call=call))]

    def close(self) -> list[StreamEvent]:
        if not self.stopped:
            raise self._broken("ended the stream before messageStop, so the answer is incomplete")
        events = [event for index in sorted(self._blocks) for event in self._stop(index)]
        acc = self.accumulator
        for part in acc.parts:
            if isinstance(part, ReasoningPart):
                part.provider = REASONING_PROVIDER
        acc.provider_details = response_details(self.stop_reason, self.additional, self.metrics)
        events.append(acc.add(StreamEvent("usage", usage=usage_from_wire(self.raw_usage))))
        events.append(acc.finish(finish_reason(self.stop_reason, has_tool_calls=self._real_tool_calls)))
        return events

    def _broken(self, what: str) -> StreamInterruptedError:
        return StreamInterruptedError(f"{self.provider} {what} (model {self.model}); the call may be retried",
                                      provider=self.provider, model=self.model)
