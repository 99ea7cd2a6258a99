"""Local token counting and the checks made before a call: cost estimate and context window.

Nothing here touches the network. :func:`count_tokens_local` counts a request's input tokens with
OpenAI's own tokenizer (``tiktoken``) for OpenAI models. tiktoken downloads its encoding files on
first use, and a count must never do that, so the files are read from a package that ships them
(``bpe-openai``, installed with the ``tokens`` extra), each checked against the sha256 the installed
tiktoken itself declares for it; failing that, from tiktoken's own disk cache when a file is already
there. Everything else gets the estimate of :func:`agentadapter.llm.backends.base.estimate_tokens`
(about four characters a token), flagged ``exact=False``. Measured against the exact tokenizer
(o200k_base and cl100k_base) it is within about 10 % on English prose and source code (prose: the
estimate is 0.88-1.02x the real count; Python source: 0.50-1.19x, median 1.06x), and it
*undercounts* other scripts badly: 0.24-0.98x (French about 0.8x, Russian, Japanese and Chinese
text 0.25-0.5x). Images and documents are counted at what the provider bills for them
(:mod:`agentadapter.llm.media_tokens`). A backend's own ``count_tokens`` (Anthropic's and Gemini's
counting endpoints) is the way to an exact count for other providers; it is a network call, made
by :meth:`agentadapter.llm.client.LLM.count_tokens` when asked for.

:func:`estimate_cost` prices a request before it is sent (budgets), with the catalog's prices
(:mod:`agentadapter.llm.catalog`). :func:`check_context_window` refuses a prompt that clearly cannot
fit the model's context window, with a margin so that an estimate never refuses a prompt that might.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import inspect
import json
import os
import re
import tempfile
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentadapter.llm import catalog
from agentadapter.llm.backends.base import estimate_tokens
from agentadapter.llm.errors import ContextWindowExceededError
from agentadapter.llm.media_tokens import pdf_page_tokens, split_media
from agentadapter.llm.messages import (
    Message,
    ReasoningPart,
    Request,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)

__all__ = [
    "ESTIMATE_MARGIN",
    "EXACT_MARGIN",
    "UNSET_MAX_TOKENS_CAP",
    "TokenCount",
    "check_context_window",
    "count_texts_local",
    "count_tokens_local",
    "estimate_cost",
    "openai_encoding_name",
]

UNSET_MAX_TOKENS_CAP = 8192
"""The output bound :func:`estimate_cost` assumes when a request sets no ``max_tokens``.

A model's maximum output (128K for many) would make every pre-call estimate look like the worst
case a call almost never reaches; most answers are far shorter. So the bound is the model's maximum
output capped at this value, the same cap the Anthropic backend sends as its default ``max_tokens``.
Set ``max_tokens`` on the request for a true upper bound.
"""

ESTIMATE_MARGIN = 0.10
"""How far an *estimated* prompt may exceed the window before :func:`check_context_window` refuses it."""

EXACT_MARGIN = 0.01
"""The same for a prompt counted with the model's tokenizer (only the message framing is approximate)."""

_ESTIMATE_METHOD = "estimate:chars/4"

# Per-message framing of OpenAI's chat format, from OpenAI's published counting recipe.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMING = 3


@dataclass(slots=True, frozen=True)
class TokenCount:
    """A request's input tokens, and how far to trust the number."""

    tokens: int
    exact: bool
    """True when every part was counted with the model's own tokenizer; the per-message framing
    (a few tokens a message) follows OpenAI's published recipe. Images, files, tool definitions and
    output schemas make a count inexact: providers add their own wrapping around them."""
    method: str
    """``tiktoken:<encoding>``, ``estimate:chars/4`` or, from a provider, ``provider:<name>``."""
    media_tokens: int = 0
    """The part of ``tokens`` that images and documents cost, by the provider's published rules."""


# ---------------------------------------------------------------------------------------- counting


def count_tokens_local(request: Request, model_id: str | None = None) -> TokenCount:
    """Input tokens of ``request`` for ``model_id`` (``provider/model`` or a bare name), offline.

    ``model_id`` defaults to ``request.model``. OpenAI models (``openai/...``, ``azure/...``,
    ``openrouter/openai/...`` or a bare ``gpt-*``/``o*`` name) are counted with tiktoken when it and
    its encoding data can be had offline (see the module docstring); everything else is estimated.
    Images cost what the provider bills for their size (read from their header; the most any image
    costs when given by URL), PDFs their pages, UTF-8 documents their text; a document that cannot
    be measured (by URL, a compressed PDF) counts as one PDF page and makes the count inexact.
    """
    model = model_id or request.model
    media = split_media(request, model, ceiling=False)
    media_tokens = media.tokens + media.unmeasured * pdf_page_tokens(model)
    has_media = media.text_only is not request
    encoding_name = openai_encoding_name(model)
    encoding = _cached_encoding(encoding_name) if encoding_name else None
    if encoding is None:
        return TokenCount(estimate_tokens(media.text_only) + media_tokens, exact=False, method=_ESTIMATE_METHOD,
                          media_tokens=media_tokens)
    tokens, exact = _count_with(encoding, media.text_only)
    return TokenCount(tokens + media_tokens, exact=exact and not has_media, method=f"tiktoken:{encoding_name}",
                      media_tokens=media_tokens)


def count_texts_local(texts: list[str], model_id: str) -> tuple[list[int], bool]:
    """Tokens of each text on its own (what an embedding request bills per input), offline; the flag says
    whether they were counted with the model's tokenizer (OpenAI models, as for
    :func:`count_tokens_local`) or estimated (about four characters a token, rounded up)."""
    encoding_name = openai_encoding_name(model_id)
    encoding = _cached_encoding(encoding_name) if encoding_name else None
    if encoding is None:
        return [max(1, -(-len(text) // 4)) for text in texts], False
    return [len(encoding.encode_ordinary(text)) for text in texts], True


def _count_with(encoding: Any, request: Request) -> tuple[int, bool]:
    def count(text: str) -> int:
        # encode_ordinary: text that happens to spell a special token is ordinary text here.
        return len(encoding.encode_ordinary(text))

    exact = True
    total = _REPLY_PRIMING
    for message in request.messages:
        part_tokens, message_exact = _message_tokens(message, count)
        total += _TOKENS_PER_MESSAGE + count(message.role) + part_tokens
        if message.name:
            total += _TOKENS_PER_NAME + count(message.name)
        exact = exact and message_exact
    if request.tools:
        exact = False
        for tool in request.tools:
            total += count(json.dumps({"name": tool.name, "description": tool.description,
                                       "parameters": tool.parameters}, separators=(",", ":")))
    if request.output is not None:
        exact = False
        total += count(json.dumps(request.output.json_schema, separators=(",", ":")))
    return total, exact


def _message_tokens(message: Message, count: Any) -> tuple[int, bool]:
    tokens = 0
    exact = True
    for part in message.parts:
        if isinstance(part, TextPart | ReasoningPart):
            tokens += count(part.text)
        elif isinstance(part, ToolCallPart):
            tokens += count(part.name) + count(json.dumps(part.arguments, separators=(",", ":")))
        elif isinstance(part, ToolResultPart):
            tokens += count(part.content)
        else:  # images and documents were taken out and priced before (media_tokens.split_media)
            exact = False
    return tokens, exact


# OpenAI model-name prefixes -> tiktoken encoding, newest families first.
_ENCODING_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)
_OPENAI_HOSTS = ("openai/", "azure/", "openrouter/openai/")


def openai_encoding_name(model_id: str) -> str | None:
    """The tiktoken encoding of an OpenAI model id, or None when it is not an OpenAI model."""
    name = model_id
    for host in _OPENAI_HOSTS:
        if name.startswith(host):
            name = name[len(host):]
            break
    else:
        if "/" in name:
            return None  # another provider's model: its tokenizer is not tiktoken's
    name = name.lower()
    for prefix, encoding_name in _ENCODING_PREFIXES:
        if name.startswith(prefix):
            return encoding_name
    return None


# ------------------------------------------------------------------------- tiktoken, offline only

_encodings: dict[str, Any] = {}
_encodings_lock = threading.Lock()
_sources: dict[str, tuple[str, str | None] | None] = {}
"""Per encoding: (download URL, expected sha256) as the installed tiktoken defines them, or None."""
_HASH_RE = re.compile(r"""expected_hash\s*=\s*["']([0-9a-f]{64})["']""")


def _cached_encoding(encoding_name: str) -> Any | None:
    """tiktoken's encoding when it can load without a download, else None."""
    encoding = _encodings.get(encoding_name)
    if encoding is not None:
        return encoding
    with _encodings_lock:
        encoding = _encodings.get(encoding_name)
        if encoding is None:
            encoding = _packaged_encoding(encoding_name)
        if encoding is None and _encoding_file_cached(encoding_name):
            import tiktoken

            encoding = tiktoken.get_encoding(encoding_name)
        if encoding is not None:
            _encodings[encoding_name] = encoding
    return encoding


_DATA_PACKAGE = "bpe_openai"
"""The package whose ``data/`` folder ships OpenAI's encoding files (``<name>.tiktoken.gz``)."""


class _NotPackaged(Exception):
    """The encoding's data file is not shipped, or not the file tiktoken expects."""


def packaged_encoding_file(encoding_name: str) -> Path | None:
    """Where the installed data package keeps ``encoding_name``'s file, or None. The package is
    located, not imported: its own tokenizer (a large native library) is not used."""
    try:
        spec = importlib.util.find_spec(_DATA_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / f"{encoding_name}.tiktoken.gz"
        if path.is_file():
            return path
    return None


def _packaged_encoding(encoding_name: str) -> Any | None:
    """The encoding built by tiktoken's own definition (split pattern, special tokens) with its merge
    ranks read from the packaged file, which must match the sha256 that definition expects."""
    path = packaged_encoding_file(encoding_name)
    if path is None:
        return None
    try:
        import tiktoken
        from tiktoken_ext import openai_public
    except ImportError:
        return None
    constructor = getattr(openai_public, "ENCODING_CONSTRUCTORS", {}).get(encoding_name)
    if not isinstance(constructor, types.FunctionType):
        return None

    def load_verified(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        if not blobpath.endswith(f"/{encoding_name}.tiktoken") or expected_hash is None:
            raise _NotPackaged(blobpath)
        try:
            contents = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as exc:
            raise _NotPackaged(str(exc)) from exc
        if hashlib.sha256(contents).hexdigest() != expected_hash:
            raise _NotPackaged(f"{path} is not the {encoding_name} file tiktoken expects")
        return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in contents.splitlines()
                                                                        if line)}

    # The definition as tiktoken wrote it, run with a loader that reads the verified local file
    # where tiktoken's would download: a copy of the function, so tiktoken's module is left untouched.
    offline = types.FunctionType(constructor.__code__, {**constructor.__globals__, "load_tiktoken_bpe": load_verified},
                                 constructor.__name__, constructor.__defaults__, constructor.__closure__)
    try:
        return tiktoken.Encoding(**offline())
    except _NotPackaged:
        return None


def _encoding_file_cached(encoding_name: str) -> bool:
    """Whether tiktoken would read ``encoding_name`` from its disk cache instead of downloading it.

    tiktoken keeps each encoding file under ``sha1(url)`` in its cache directory
    (``TIKTOKEN_CACHE_DIR``, else ``DATA_GYM_CACHE_DIR``, else its default: a ``data-gym-cache``
    folder in the temp dir in older releases, ``~/.cache/tiktoken`` in newer ones) and downloads
    it again when the file is missing or fails its sha256 check. The URL and the hash are read from
    the installed tiktoken's own encoding definitions, so the check follows whichever release is
    installed; anything unexpected counts as "not cached", and the caller estimates instead.
    """
    if encoding_name not in _sources:
        _sources[encoding_name] = _encoding_source(encoding_name)
    located = _sources[encoding_name]
    if located is None:
        return False
    cache_dir = _tiktoken_cache_dir()
    if not cache_dir:  # an empty cache dir disables tiktoken's cache: it would always download
        return False
    url, expected_hash = located
    try:
        data = (Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()).read_bytes()
    except OSError:
        return False
    return expected_hash is None or hashlib.sha256(data).hexdigest() == expected_hash


def _encoding_source(encoding_name: str) -> tuple[str, str | None] | None:
    try:
        from tiktoken_ext import openai_public
    except ImportError:  # tiktoken is optional
        return None
    constructor = getattr(openai_public, "ENCODING_CONSTRUCTORS", {}).get(encoding_name)
    if constructor is None:
        return None
    try:
        source = inspect.getsource(constructor)
    except (OSError, TypeError):
        return None
    url = re.search(rf"""["']([^"']*/encodings/{re.escape(encoding_name)}\.tiktoken)["']""", source)
    if url is None:
        return None
    expected_hash = _HASH_RE.search(source)
    return url.group(1), expected_hash.group(1) if expected_hash else None


def _tiktoken_cache_dir() -> str:
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    default: Any = None
    try:
        from tiktoken import load

        default = getattr(load, "_default_cache_dir", None)
    except ImportError:
        pass
    if callable(default):
        return str(default())
    return str(Path(tempfile.gettempdir()) / "data-gym-cache")


# ----------------------------------------------------------------------------------- cost, window


def estimate_cost(
    request: Request, model_id: str, pricing: catalog.Pricing | None = None,
    *, capabilities: catalog.Capabilities | None = None,
) -> float | None:
    """USD a request may cost, before it is sent: counted input plus an output bound, at catalog prices.

    The output bound is ``request.max_tokens`` when set, else the model's maximum output capped at
    :data:`UNSET_MAX_TOKENS_CAP`, and never more than what the context window leaves after the
    prompt. No cache hits are assumed, so this over- rather than under-states. ``pricing`` defaults
    to the catalog's price for ``model_id`` (``capabilities``, when given, are the entry to use: a
    facade's own view of the catalog); None when no price is known (unknown, not free).
    """
    if capabilities is None:
        capabilities = catalog.lookup(model_id) if pricing is None else catalog.find(model_id) or catalog.DEFAULTS
    pricing = pricing or capabilities.pricing
    if pricing is None:
        return None
    input_tokens = count_tokens_local(request, model_id).tokens
    if request.max_tokens is not None:
        output_bound = request.max_tokens
    else:
        output_bound = min(capabilities.max_output_tokens, UNSET_MAX_TOKENS_CAP)
        if capabilities.known:
            output_bound = min(output_bound, max(0, capabilities.context_window - input_tokens))
    cost = catalog.cost_usd(Usage(input_tokens=input_tokens, output_tokens=output_bound), pricing)
    return cost or 0.0


def check_context_window(
    request: Request, capabilities: catalog.Capabilities, *, model_id: str | None = None,
    counted: TokenCount | None = None,
) -> TokenCount:
    """Raise :class:`ContextWindowExceededError` when the prompt clearly exceeds the context window.

    Counts locally (:func:`count_tokens_local`; ``model_id`` picks the tokenizer, default
    ``request.model``) and refuses only when the count exceeds the window by more than
    :data:`ESTIMATE_MARGIN` (10 %) for an estimate, or :data:`EXACT_MARGIN` for a tokenizer count,
    so a prompt that might fit is always sent and left to the provider. Models the catalog does
    not know are never refused (their window is a guess). Returns the count; ``counted`` is one
    already made (the call's :class:`~agentadapter.llm.estimate.CallEstimate`), else it is counted here.
    """
    model = model_id or request.model
    if counted is None:
        counted = count_tokens_local(request, model)
    window = capabilities.context_window
    if not capabilities.known or window <= 0:
        return counted
    margin = EXACT_MARGIN if counted.exact else ESTIMATE_MARGIN
    if counted.tokens <= window * (1 + margin):
        return counted
    how = "counted with the model's tokenizer" if counted.exact else f"estimated locally ({counted.method})"
    raise ContextWindowExceededError(
        f"the prompt for {model} is about {counted.tokens:,} tokens ({how}), more than its "
        f"{window:,}-token context window by over {margin:.0%}; nothing was sent. Shorten the "
        "conversation (drop or summarize old turns, trim long tool results or documents) or pick a "
        "model with a larger context window",
        model=model,
    )
