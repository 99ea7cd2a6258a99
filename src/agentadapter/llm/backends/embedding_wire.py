"""The embedding endpoints' wire formats: request bodies out, vectors and billed tokens back.

Three formats serve every provider: OpenAI's ``POST /embeddings`` (OpenAI, Azure, Mistral and the
compatible presets; vectors as float lists or base64 of float32), Gemini's ``:batchEmbedContents``
(one request per text, a task type from the input type, no token count in the answer) and Cohere's
``POST /v2/embed`` (``input_type`` required by its v3+ models, ``embedding_types``, billed units).
The backends own the URLs and the HTTP exchange; this module owns the bodies, so each is tested
against its fake and read in one place. An answer that is not the API's (a wrong count of vectors,
a vector that is not numbers) raises :class:`InvalidResponseError`: it usually means the base URL
points at something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentadapter.llm.embeddings import EmbeddingBatch, EmbeddingRequest, decode_base64_vector
from agentadapter.llm.errors import InvalidResponseError

__all__ = [
    "COHERE_INPUT_TYPES",
    "GEMINI_TASK_TYPES",
    "cohere_body",
    "cohere_batch",
    "estimated_tokens",
    "gemini_body",
    "gemini_batch",
    "openai_batch",
    "openai_body",
]

GEMINI_TASK_TYPES = {
    "query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT",
    "classification": "CLASSIFICATION", "clustering": "CLUSTERING",
}
COHERE_INPUT_TYPES = {
    "query": "search_query", "document": "search_document",
    "classification": "classification", "clustering": "clustering",
}


def estimated_tokens(texts: list[str]) -> int:
    """About four characters a token, for providers that report no count (Gemini)."""
    return sum(max(1, -(-len(text) // 4)) for text in texts)


def _invalid(provider: str, model: str, what: str, body: Any) -> InvalidResponseError:
    return InvalidResponseError(
        f"{provider} answered an embedding request with {what} (model {model}): {str(body)[:200]!r}; "
        "check the base URL", provider=provider, model=model, body=body,
    )


_NUMBER_TYPES = frozenset({float, int})


def _vector(value: Any, provider: str, model: str, body: Any) -> list[float]:
    if isinstance(value, str):
        try:
            return decode_base64_vector(value)
        except ValueError as exc:
            raise _invalid(provider, model, f"a base64 vector that does not decode ({exc})", body) from exc
    # The set of the values' types, not a check per value: a vector has hundreds of values, a call
    # many vectors, and this is on every online embedding answer.
    if isinstance(value, list) and set(map(type, value)) <= _NUMBER_TYPES:
        return [float(x) for x in value]
    raise _invalid(provider, model, "a vector that is not a list of numbers", body)


def _checked_count(vectors: list[list[float]], request: EmbeddingRequest, provider: str, body: Any) -> None:
    if len(vectors) != len(request.inputs):
        raise _invalid(provider, request.model, f"{len(vectors)} vectors for {len(request.inputs)} texts", body)


# ------------------------------------------------------------------------------------------ OpenAI


def openai_body(request: EmbeddingRequest, *, base64: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "input": request.inputs,
                            "encoding_format": "base64" if base64 else "float"}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    body.update(request.extra_body)
    return body


def openai_batch(body: Any, request: EmbeddingRequest, provider: str) -> EmbeddingBatch:
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
        raise _invalid(provider, request.model, "JSON that is not an embedding list", body)
    ordered = sorted(data, key=lambda item: item.get("index", 0) if isinstance(item.get("index"), int) else 0)
    vectors = [_vector(item.get("embedding"), provider, request.model, body) for item in ordered]
    _checked_count(vectors, request, provider, body)
    usage = body.get("usage")
    tokens = usage.get("prompt_tokens", usage.get("total_tokens")) if isinstance(usage, Mapping) else None
    details: dict[str, Any] = {}
    if not isinstance(tokens, int):
        tokens = estimated_tokens(request.inputs)  # some compatible servers report no usage
        details["input_tokens_estimated"] = True
    model = body.get("model")
    return EmbeddingBatch(vectors, tokens, model if isinstance(model, str) and model else request.model, details)


# ------------------------------------------------------------------------------------------ Gemini


def gemini_body(request: EmbeddingRequest, resource: str) -> dict[str, Any]:
    """``batchEmbedContents``: one ``EmbedContentRequest`` per text (``resource``: ``models/<name>``)."""
    template: dict[str, Any] = {"model": resource}
    if request.input_type is not None:
        template["taskType"] = GEMINI_TASK_TYPES[request.input_type]
    if request.dimensions is not None:
        template["outputDimensionality"] = request.dimensions
    requests = [{**template, "content": {"parts": [{"text": text}]}} for text in request.inputs]
    return {"requests": requests, **request.extra_body}


def gemini_batch(body: Any, request: EmbeddingRequest, provider: str) -> EmbeddingBatch:
    embeddings = body.get("embeddings") if isinstance(body, Mapping) else None
    if not isinstance(embeddings, list) or not all(isinstance(item, Mapping) for item in embeddings):
        raise _invalid(provider, request.model, "JSON that is not a batchEmbedContents answer", body)
    vectors = [_vector(item.get("values"), provider, request.model, body) for item in embeddings]
    _checked_count(vectors, request, provider, body)
    # The answer carries no token count: the estimate is what is billed here (and said so).
    return EmbeddingBatch(vectors, estimated_tokens(request.inputs), request.model, {"input_tokens_estimated": True})


# ------------------------------------------------------------------------------------------ Cohere


def cohere_body(request: EmbeddingRequest) -> dict[str, Any]:
    """``/v2/embed``: ``input_type`` is required by Cohere's v3+ models; without one, texts are documents
    (what a collection to search holds); ``truncate: NONE`` so an over-long text fails, never shrinks."""
    body: dict[str, Any] = {
        "model": request.model, "texts": request.inputs,
        "input_type": COHERE_INPUT_TYPES[request.input_type or "document"],
        "embedding_types": ["float"], "truncate": "NONE",
    }
    if request.dimensions is not None:
        body["output_dimension"] = request.dimensions
    body.update(request.extra_body)
    return body


def cohere_batch(body: Any, request: EmbeddingRequest, provider: str) -> EmbeddingBatch:
    embeddings = body.get("embeddings") if isinstance(body, Mapping) else None
    floats = embeddings.get("float") if isinstance(embeddings, Mapping) else None
    if not isinstance(floats, list):
        raise _invalid(provider, request.model, "JSON that is not a v2 embed answer with float embeddings", body)
    vectors = [_vector(item, provider, request.model, body) for item in floats]
    _checked_count(vectors, request, provider, body)
    meta = body.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, Mapping) else None
    tokens = billed.get("input_tokens") if isinstance(billed, Mapping) else None
    details: dict[str, Any] = {"id": body.get("id")} if isinstance(body.get("id"), str) else {}
    if not isinstance(tokens, int | float) or isinstance(tokens, bool):
        tokens = estimated_tokens(request.inputs)
        details["input_tokens_estimated"] = True
    return EmbeddingBatch(vectors, int(tokens), request.model, details)
