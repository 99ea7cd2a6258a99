"""``LLM.embed``: one embedding call through the facade's policies, as a chat call goes through them.

The steps are the chat pipeline's (:class:`~agentadapter.llm.client.PreparedCall`), over an
:class:`~agentadapter.llm.embeddings.EmbeddingRequest`:

1. the inputs are checked (a string or a list of non-empty strings), and a text no target of the
   route can read (longer than its ``max_input_tokens``), or a ``dimensions`` none can give, is refused
   with :class:`InvalidRequestError` before any request;
2. the response cache answers a call it has seen (model id as called, texts, ``dimensions``,
   ``input_type``): marked ``cached``, no cost;
3. the budgets and guards (a tenant's credits) hold the worst case: every input token at the dearest
   target's price (:func:`embedding_bound`; embeddings bill no output);
4. the router embeds (:meth:`~agentadapter.llm.router.Router.embed_all`: breakers, rate limits that
   count the input tokens, retries, failover, one deadline, batches within each target's limits);
5. the holds settle to the cost, the usage ledger records it (tagged like a chat call), the log line
   is written and the cache stores the vectors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from agentadapter.llm.bounds import CallBound
from agentadapter.llm.embeddings import INPUT_TYPES, EmbeddingRequest, EmbeddingResponse, checked_inputs
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.ledger import UsageEntry
from agentadapter.llm.policy.cache import dump_embedding, embedding_cache_key, load_embedding
from agentadapter.llm.router import Router, embedding_entry, embedding_problem
from agentadapter.llm.tokens import count_texts_local
from agentadapter.observability.logging import get_logger

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM, ModelId
    from agentadapter.llm.resolve import Target

__all__ = ["embed", "embedding_bound", "embedding_request"]

_log = get_logger("agentadapter.llm")


def embedding_request(
    inputs: Any, *, dimensions: int | None = None, input_type: str | None = None, timeout: float | None = None,
) -> EmbeddingRequest:
    """The checked request for a call's arguments (:class:`InvalidRequestError` saying what is wrong)."""
    texts = checked_inputs(inputs)
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise InvalidRequestError(f"dimensions must be a positive whole number, not {dimensions!r}")
    if input_type is not None and input_type not in INPUT_TYPES:
        raise InvalidRequestError(f"input_type={input_type!r} is not one of {', '.join(INPUT_TYPES)}")
    if timeout is not None and not timeout > 0:
        raise InvalidRequestError("timeout= must be a positive number of seconds")
    return EmbeddingRequest(
        model="", inputs=texts, dimensions=dimensions, input_type=input_type,  # type: ignore[arg-type]
        timeout=timeout, deadline=time.monotonic() + timeout if timeout is not None else None,
    )


async def embed(
    llm: LLM, model: ModelId, request: EmbeddingRequest, *, tags: Mapping[str, str] | None = None
) -> EmbeddingResponse:
    """Run ``request`` on ``model`` through ``llm``'s policies (see the module docstring)."""
    started = time.perf_counter()
    call_tags = {**(tags or {}), **llm.tags}  # the facade's tags win: a caller cannot re-attribute usage
    router = llm.router(model)
    refuse_unfit(router, request)
    key = None
    if llm.cache is not None:
        key = embedding_cache_key(model if isinstance(model, str) else "|".join(model), request)
        stored = await llm.cache.get(key)
        llm.telemetry.cache_lookup(stored is not None)
        if stored is not None:
            return _finish(llm, load_embedding(stored, started=started), call_tags, started)
    hold = await llm.hold_bound(lambda: embedding_bound(_leaf_targets(router), request.inputs), call_tags)
    try:
        response = await router.embed_all(request)
    except BaseException:
        if hold is not None:
            await hold.settle(0.0)  # nothing billable was bought
        raise
    if hold is not None:
        await hold.settle(response.cost_usd)
    _finish(llm, response, call_tags, started)
    if key is not None and llm.cache is not None:
        await llm.cache.set(key, dump_embedding(response), llm.cache_ttl_s)
    return response


def refuse_unfit(router: Router, request: EmbeddingRequest) -> None:
    """Refuse, before any request, inputs (or ``dimensions``) that no target of the route can embed."""
    problems: list[str] = []
    for target in _leaf_targets(router):
        counts, _ = count_texts_local(request.inputs, target.label)
        problem = embedding_problem(target, counts, request.dimensions)
        if problem is None:
            return
        problems.append(problem)
    raise InvalidRequestError(f"nothing was sent: {problems[0]}" + (
        f" (and no other target of the route fits: {'; '.join(problems[1:])})" if len(problems) > 1 else ""))


def _leaf_targets(router: Router) -> list[Target]:
    targets: list[Target] = []
    for target in router.route.targets:
        if isinstance(target.backend, Router):
            targets.extend(_leaf_targets(target.backend))
        else:
            targets.append(target)
    return targets


def embedding_bound(targets: Sequence[Target], texts: list[str]) -> CallBound:
    """The most an embedding call may cost: every input token at the dearest target's price (an
    unpriced target wins, since nothing bounds it; an in-process model costs nothing)."""
    bounds: list[CallBound] = []
    for target in targets:
        tokens = sum(count_texts_local(texts, target.label)[0])
        entry = embedding_entry(target)
        usd = entry.cost_usd(tokens) if entry is not None else None
        bounds.append(CallBound(usd or 0.0, target.label, tokens, 0, priced=usd is not None, output_enforced=True))
    return max(bounds, key=lambda bound: (not bound.priced, bound.usd))


def _finish(llm: LLM, response: EmbeddingResponse, tags: Mapping[str, str], started: float) -> EmbeddingResponse:
    """Latency, the usage ledger and the log line: the same for a cached and a fresh answer."""
    response.latency_ms = (time.perf_counter() - started) * 1000.0
    llm.ledger.record(UsageEntry(
        ts=time.time(), provider=response.provider, model=response.model, usage=response.usage,
        cost_usd=0.0 if response.cached else response.cost_usd, tags=MappingProxyType(dict(tags)),
        cached=response.cached, latency_ms=response.latency_ms,
    ))
    if _log.isEnabledFor(logging.INFO):
        _log.info("llm.embed", extra={
            "provider": response.provider, "model": response.model, "inputs": len(response.vectors),
            "dimensions": response.dimensions, "latency_ms": round(response.latency_ms, 3),
            "input_tokens": response.usage.input_tokens, "cost_usd": response.cost_usd, "cached": response.cached,
            "attempts": len(response.attempts), "tags": dict(tags),
        })
    return response
