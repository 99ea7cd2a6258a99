"""Batch calls: many requests submitted at once to a provider's batch API, at its batch price.

``job = await llm.batch(model, requests)`` submits ``requests`` (prompts, message lists, neutral
:class:`~agentadapter.llm.messages.Request` s, or dicts of ``generate`` arguments) to the batch API of
the provider behind ``model`` (OpenAI's Batch API, Anthropic's Message Batches:
:mod:`agentadapter.llm.batch_wire`) and returns a :class:`BatchJob`. The job is a handle: poll it
(:meth:`BatchJob.poll`), or wait for it with a progress callback (:meth:`BatchJob.wait`); when it has
ended, :meth:`BatchJob.results` gives one :class:`BatchItem` per request, **in request order**, each
holding either the neutral ``Response`` (priced at the batch price, recorded in the usage ledger with
the ``batch`` tag) or the error that item met: one failed item never fails the others. Providers keep
a job for days; :meth:`BatchJob.state` and :func:`resume_batch` carry a handle across processes.

Batches are not held against budgets before they are submitted (a job may run for a day); their
cost is recorded when their results are read. A batch runs on one provider: a route of several
targets is refused, since a batch cannot fail over item by item.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentadapter.llm import catalog
from agentadapter.llm.batch_wire import BatchAPI, BatchState, batch_api_for
from agentadapter.llm.errors import APIError, APITimeoutError, CapabilityError, InvalidRequestError
from agentadapter.llm.messages import Message, Request, Response

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM

__all__ = ["BatchItem", "BatchJob", "BatchResult", "BatchState", "resume_batch", "submit_batch"]

MAX_BATCH_REQUESTS = 50_000
"""The most requests one job takes (OpenAI's limit; Anthropic's is 100,000)."""

MAX_POLL_FAILURES = 3
"""Retryable errors in a row that :meth:`BatchJob.wait` rides out before it raises the last one."""

BatchInput = str | Request | Sequence[Message | Mapping[str, Any]] | Mapping[str, Any]
"""One request of a batch: a prompt, messages, a :class:`Request`, or ``generate``'s arguments as a dict."""


@dataclass(slots=True)
class BatchItem:
    """One request's outcome."""

    index: int
    """Its position in the submitted list."""
    custom_id: str
    response: Response | None = None
    error: APIError | None = None
    """What went wrong for this item alone (a refused request, an expired or cancelled item)."""

    @property
    def ok(self) -> bool:
        return self.response is not None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "custom_id": self.custom_id,
                "response": self.response.to_dict() if self.response is not None else None,
                "error": None if self.error is None else {"type": type(self.error).__name__,
                                                          "message": str(self.error), "status": self.error.status}}


@dataclass(slots=True)
class BatchResult:
    """Every item, in request order, and what the job cost."""

    job_id: str
    items: list[BatchItem]

    @property
    def responses(self) -> list[Response | None]:
        return [item.response for item in self.items]

    @property
    def failed(self) -> list[BatchItem]:
        return [item for item in self.items if item.error is not None]

    @property
    def cost_usd(self) -> float | None:
        costs = [item.response.cost_usd for item in self.items if item.response is not None]
        return None if any(c is None for c in costs) else round(sum(c for c in costs if c is not None), 10)


@dataclass
class BatchJob:
    """A submitted batch: poll it, wait for it, read its results, cancel it."""

    id: str
    provider: str
    """The backend (provider) name that runs it."""
    model: str
    custom_ids: list[str]
    api: BatchAPI = field(repr=False)
    llm: LLM = field(repr=False)
    tags: dict[str, str] = field(default_factory=dict)
    context: Any = field(default=None, repr=False)
    """What reading answers back needs (Anthropic: each item's structured-output tool)."""
    last: BatchState | None = None
    """The state as last polled."""
    _result: BatchResult | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}"

    async def poll(self) -> BatchState:
        """Ask the provider how far the job is."""
        self.last = await self.api.status(self.id, len(self.custom_ids))
        return self.last

    async def wait(self, *, poll_interval: float = 30.0, timeout: float | None = None,
                   progress: Callable[[BatchState], None] | None = None) -> BatchResult:
        """Poll every ``poll_interval`` seconds until the job ends, then return its results.

        A retryable failure of a poll (a rate limit, a 5xx, a dropped connection) is tried again at
        the next interval, up to :data:`MAX_POLL_FAILURES` in a row. ``progress`` is called with each
        state polled (a rich progress bar, a log line); ``timeout`` (seconds) raises
        :class:`APITimeoutError` while the job goes on at the provider: wait again or resume it later
        (:meth:`state`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            try:
                state = await self.poll()
            except APIError as error:
                # A job runs for hours: a passing 429 or 5xx on one poll is no reason to give up on it.
                failures += 1
                if not error.retryable or failures > MAX_POLL_FAILURES:
                    raise
                await asyncio.sleep(poll_interval)
                continue
            failures = 0
            if progress is not None:
                progress(state)
            if state.ended:
                return await self.results()
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise APITimeoutError(
                    f"batch {self.id} on {self.provider} has not ended after {timeout}s ({state.done}/{state.total} "
                    "done); it goes on at the provider: wait again, or resume it later with resume_batch(llm, state)",
                    provider=self.provider, model=self.model,
                )
            await asyncio.sleep(poll_interval)

    async def results(self) -> BatchResult:
        """One :class:`BatchItem` per request, in request order; the job must have ended."""
        if self._result is not None:
            return self._result
        state = self.last if self.last is not None and self.last.ended else await self.poll()
        if not state.ended:
            raise InvalidRequestError(
                f"batch {self.id} is {state.status} ({state.done}/{state.total} done); its results come once it "
                "has ended: await job.wait()"
            )
        outcomes = await self.api.results(state, self.model, self.context)
        pricing = self.llm.catalog.lookup(self.label).pricing
        items: list[BatchItem] = []
        for index, custom_id in enumerate(self.custom_ids):
            outcome = outcomes.get(custom_id)
            if isinstance(outcome, Response):
                outcome.cost_usd = catalog.batch_cost_usd(outcome.usage, pricing)
                outcome.provider_details = {**(outcome.provider_details or {}), "batch_id": self.id}
                self.llm.ledger.record_response(outcome, {**self.tags, "batch": self.id})
                items.append(BatchItem(index, custom_id, response=outcome))
            elif isinstance(outcome, APIError):
                items.append(BatchItem(index, custom_id, error=outcome))
            else:
                items.append(BatchItem(index, custom_id, error=APIError(
                    f"{self.provider} returned no result for batch item {custom_id} (job {self.id}, {state.status}); "
                    "submit it again", provider=self.provider, model=self.model, retryable=True)))
        self._result = BatchResult(self.id, items)
        return self._result

    async def cancel(self) -> None:
        """Ask the provider to stop; items already answered keep their results."""
        await self.api.cancel(self.id)

    def state(self) -> dict[str, Any]:
        """What :func:`resume_batch` needs to pick the job up again (JSON-safe, no secrets)."""
        if self.context:
            raise CapabilityError("this job reads answers back through structured-output tools it keeps in "
                                  "memory; it cannot be resumed in another process")
        return {"id": self.id, "provider": self.provider, "model": self.model, "custom_ids": list(self.custom_ids),
                "tags": dict(self.tags)}


def _coerce(llm: LLM, item: BatchInput, settings: Mapping[str, Any], index: int) -> Request:
    if isinstance(item, Request):
        return item
    if isinstance(item, str) or (isinstance(item, Sequence) and not isinstance(item, Mapping)):
        return llm.request(item, **settings)
    if isinstance(item, Mapping):
        values = {**settings, **item}
        messages = values.pop("messages", None) or values.pop("prompt", None)
        if messages is None:
            raise InvalidRequestError(f"batch request {index} has neither messages= nor prompt=")
        return llm.request(messages, **values)
    raise InvalidRequestError(f"batch request {index} is a {type(item).__name__}; give a prompt, messages, a "
                              "Request or a dict of generate() arguments")


async def submit_batch(llm: LLM, model: str, requests: Sequence[BatchInput], **settings: Any) -> BatchJob:
    """Submit ``requests`` to ``model``'s provider batch API (see the module docstring)."""
    if not requests:
        raise InvalidRequestError("a batch needs at least one request")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise InvalidRequestError(f"a batch takes at most {MAX_BATCH_REQUESTS:,} requests, got {len(requests):,}; "
                                  "split it into several jobs")
    route = llm.resolver.route(model)
    if len(route.targets) != 1 or not route.targets[0].model:
        raise CapabilityError(
            f"{model!r} is a route over several targets; a batch runs on one provider, so name it "
            "(e.g. openai/gpt-4o-mini)"
        )
    target = route.targets[0]
    api = batch_api_for(target.backend)
    tags = {str(k): str(v) for k, v in (settings.pop("tags", None) or {}).items()}
    built: list[tuple[str, Request]] = []
    for index, item in enumerate(requests):
        request = _coerce(llm, item, settings, index)
        request.model = target.model
        built.append((f"request-{index}", request))
    job_id, context = await api.submit(target.model, built)
    return BatchJob(job_id, target.backend.name, target.model, [custom_id for custom_id, _ in built], api, llm,
                    tags, context)


def resume_batch(llm: LLM, state: Mapping[str, Any]) -> BatchJob:
    """A :class:`BatchJob` again, from :meth:`BatchJob.state` (another process, a restart)."""
    try:
        provider, model, job_id = str(state["provider"]), str(state["model"]), str(state["id"])
        custom_ids = [str(c) for c in state["custom_ids"]]
    except (KeyError, TypeError) as exc:
        raise InvalidRequestError(f"not a batch job's state: {exc}; pass what BatchJob.state() returned") from exc
    target = llm.resolver.route(f"{provider}/{model}").targets[0]
    return BatchJob(job_id, provider, model, custom_ids, batch_api_for(target.backend), llm,
                    dict(state.get("tags") or {}))
