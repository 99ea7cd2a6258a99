"""The root of AgentAdapter's exception tree, and the one drawing of the whole tree (public: every layer imports it).

This module sits at the bottom of the layers (beside ``config.py`` and ``observability/``), so every
layer can derive its errors from it without importing another layer. It defines the root,
:class:`AgentAdapterError`, and the cross-cutting bases every layer raises: :class:`ConfigurationError`,
:class:`InvalidRequestError` and :class:`RedisUnavailableError`. Every other error is defined in the
layer that raises it (bracketed on the right below) and only drawn here; the other error modules'
docstrings point to this drawing, and ``tests/test_error_tree.py`` checks that it names every
subclass of :class:`AgentAdapterError` in the package, under its own base, in its own module, with its
``retryable`` flag::

    AgentAdapterError                          every error AgentAdapter raises                        [errors]
    ├── ConfigurationError                     bad set-up: unknown provider, missing key, bad file    [errors]
    │   ├── SecretKeyError                     the secret key is unusable or opens nothing     [store.secrets]
    │   ├── WorkflowError                      a workflow file or spec is invalid         [orchestrator.errors]
    │   └── ConditionError                     a when:/until: condition is invalid        [orchestrator.errors]
    ├── InvalidRequestError (also ValueError)  bad input caught before any network call               [errors]
    │   ├── UnsafeSchemaError                  a JSON schema too deep, cyclic or remote   [llm.schema_safety]
    │   └── StrategyError                      a strategy does not fit its agents         [orchestrator.errors]
    ├── RedisUnavailableError (also ConnectionError)  Redis could not be reached or failed          [errors]
    ├── APIError                               a backend failed: provider, model, status, body      [llm.errors]
    │   ├── APIConnectionError                 could not reach it [retryable]                      [llm.errors]
    │   │   └── APITimeoutError                no answer in time [retryable]                       [llm.errors]
    │   │       └── AgentTimeoutError          an agent step overran its timeout [retryable] [orchestrator.errors]
    │   ├── StreamInterruptedError             the stream broke after HTTP 200 [retryable]         [llm.errors]
    │   ├── InvalidResponseError               a 2xx whose body is not the API's shape             [llm.errors]
    │   └── APIStatusError                     the backend answered with an error status           [llm.errors]
    │       ├── BadRequestError                400, 422                                            [llm.errors]
    │       │   ├── ContextWindowExceededError the prompt does not fit the context window          [llm.errors]
    │       │   └── ContentFilterError         the provider's safety system refused                [llm.errors]
    │       ├── AuthenticationError            401                                                 [llm.errors]
    │       ├── PermissionDeniedError          403                                                 [llm.errors]
    │       ├── NotFoundError                  404                                                 [llm.errors]
    │       ├── ConflictError                  409 [retryable]                                     [llm.errors]
    │       ├── RateLimitError                 429, ``retry_after`` [retryable]                    [llm.errors]
    │       └── ServerError                    >= 500 [retryable]                                  [llm.errors]
    │           └── OverloadedError            529, 503, "overloaded" [retryable]                  [llm.errors]
    ├── CircuitOpenError                       a breaker refused the call unsent [retryable]       [llm.errors]
    ├── BudgetExceededError                    a budget refused the call before it was sent        [llm.errors]
    │   ├── InsufficientCreditsError           the tenant's credit cannot cover the call           [llm.errors]
    │   └── UnpricedModelError                 a budget cannot bound a model without a price       [llm.errors]
    ├── CapabilityError                        the model cannot do what the request needs          [llm.errors]
    ├── OutputValidationError                  the structured output did not match its schema      [llm.errors]
    ├── AllTargetsFailedError                  every target of a route failed [retryable: if one is] [llm.errors]
    ├── ProtocolError                          the message bus, registry or shared context     [protocol.errors]
    │   ├── InvalidValueError (also ValueError)  a value that is not JSON, a malformed key     [protocol.errors]
    │   │   └── InvalidEnvelopeError           a message that cannot be sent as built          [protocol.errors]
    │   ├── QueueFullError                     a recipient's inbox is at capacity              [protocol.errors]
    │   ├── RequestTimeoutError (also TimeoutError)  no response before the deadline           [protocol.errors]
    │   ├── RemoteError                        the responder answered with an error            [protocol.errors]
    │   ├── VersionConflictError               a compare-and-set lost the race (CASConflict)   [protocol.errors]
    │   ├── AgentNotFoundError (also LookupError)  the registry does not know the agent        [protocol.errors]
    │   ├── NoAgentAvailableError              no healthy agent has the capability             [protocol.errors]
    │   ├── WatchOverflowError                 a watcher fell too far behind                   [protocol.errors]
    │   ├── ProtocolClosedError                the component was closed                        [protocol.errors]
    │   └── ProtocolConnectionError (also RedisUnavailableError)  Redis failed        [protocol.errors]
    ├── GuardrailTripped                       an agent guardrail stopped the run                [agents.errors]
    ├── MaxTurnsExceeded                       an agent ran out of turns                         [agents.errors]
    ├── ToolError                              a built-in tool could not do what was asked [agents.tools.errors]
    │   ├── CommandRefused                     the shell sandbox refused a command         [agents.tools.errors]
    │   ├── CommandKilled                      the shell sandbox stopped a running command [agents.tools.errors]
    │   ├── FetchRefused                       http_fetch refused a URL                    [agents.tools.errors]
    │   ├── FetchError                         http_fetch could not get readable text      [agents.tools.errors]
    │   ├── WebSearchError                     the search provider failed                  [agents.tools.errors]
    │   └── MCPToolError                       an MCP server failed, or its tool did       [agents.tools.errors]
    ├── OrchestratorError                      a run could not finish                     [orchestrator.errors]
    │   ├── RunLimitExceeded                   max_cost_usd, max_steps or timeout_s       [orchestrator.errors]
    │   ├── StepFailedError                    an agent step failed after its retries     [orchestrator.errors]
    │   ├── QuorumLostError                    too few agents of a parallel group succeeded [orchestrator.errors]
    │   ├── AgentPausedError                   an agent paused inside an orchestrated run [orchestrator.errors]
    │   │   └── StepPaused                     the step waits for a human decision (run: paused) [orchestrator.pause]
    │   └── NestedRunFailed                    a workflow run as a step or tool did not complete [orchestrator.nested]
    ├── FrameworkError                         another framework's agent failed           [frameworks.errors]
    │   └── FrameworkCancelled                 its agent was cancelled; no more model calls [frameworks.errors]
    ├── StoreError                             the database refused or could not find something   [store.errors]
    │   ├── RecordNotFound                     no such row for this tenant (API: 404)             [store.errors]
    │   ├── RecordConflict                     a unique name is taken, or the state forbids (409) [store.errors]
    │   ├── InvalidCursor (also ValueError)    a cursor this store did not hand out (422)         [store.errors]
    │   ├── DatabaseUnavailable                the database cannot be reached (503)               [store.errors]
    │   └── InvalidProviderKey (also ValueError)  a provider key that cannot be stored   [store.provider_keys]
    ├── KnowledgeError                         files, extraction, scanning or storage failed    [knowledge.errors]
    │   ├── ExtractionError                    a file's text cannot be read (encrypted, no text) [knowledge.errors]
    │   ├── MalwareFound                       the malware scanner found a signature in an upload [knowledge.errors]
    │   ├── ScannerUnavailable                 a configured scanner does not answer [retryable] [knowledge.errors]
    │   └── StorageError                       the file storage could not write, read or delete [knowledge.errors]
    └── ServiceError                           what the application layer refuses: code, param  [service.errors]
        ├── InvalidInput                       the input is not acceptable (API: 422)           [service.errors]
        ├── NotAllowed                         the caller may not do this (403)                 [service.errors]
        ├── NotFound                           no such resource for this caller (404)           [service.errors]
        ├── Conflict                           the resource's state does not allow it (409)     [service.errors]
        ├── PaymentRequired                    the tenant's credit does not cover it (402)      [service.errors]
        └── Unavailable                        a needed part does not answer now (503)          [service.errors]
            └── ExecutorUnavailable            the executor cannot take a run now             [service.executor]

``retryable`` (a class attribute, False on the root) says whether trying the same thing again may
succeed: the retry policy (:mod:`agentadapter.llm.policy.retry`), the router's failover and the
orchestrator's step retries read it. Foreign exceptions are mapped at the edge to the most specific
class here, ``raise ... from exc``. The API answers with its own type (``server.errors.HTTPProblem``),
which is not an :class:`AgentAdapterError`: it is an HTTP answer, not a failure of the library.
"""

from __future__ import annotations

__all__ = ["AgentAdapterError", "ConfigurationError", "InvalidRequestError", "RedisUnavailableError"]


class AgentAdapterError(Exception):
    """The root of every error AgentAdapter raises."""

    retryable: bool = False
    """Whether trying the same thing again may succeed (the retry policy and the router read it)."""


class ConfigurationError(AgentAdapterError):
    """The set-up is wrong: an unknown provider, a missing API key, an invalid config file."""


class InvalidRequestError(AgentAdapterError, ValueError):
    """The request is malformed; caught before anything is sent."""


class RedisUnavailableError(AgentAdapterError, ConnectionError):
    """The Redis server could not be reached or failed mid-operation.

    Raised by every part that keeps state on Redis (the budget store, the protocol) when a Redis
    failure must stop what was asked - a budget that cannot be checked refuses the call rather than
    risk overspending. ``url`` names the server (never with its password); ``detail`` says what
    failed and what it stopped.

    Not ``retryable``: every target and every step shares the one Redis, so failing over or retrying
    at once would fail the same way; the caller retries later (the API answers 503 with Retry-After).
    """

    def __init__(self, url: str, detail: str, *, advice: str | None = None) -> None:
        self.url = url
        self.detail = detail
        super().__init__(
            f"cannot use Redis at {url} ({detail}); "
            + (advice or "start the Redis server or fix AGENTADAPTER_REDIS_URL, then retry")
        )
