"""Each provider's embedding endpoint on the wire, against its loopback fake: the URL, the auth, the body
(``dimensions``, ``encoding_format``, task and input types) and the answer read back in input order."""

from __future__ import annotations

import pytest

from agentadapter import LLM
from agentadapter.llm.backends.embedding_wire import openai_batch
from agentadapter.llm.backends.presets import PRESETS
from agentadapter.llm.embeddings import EmbeddingRequest, decode_base64_vector, encode_base64_vector
from agentadapter.llm.errors import AuthenticationError, InvalidResponseError
from fakes.cohere_server import CohereFake
from fakes.embedding import fake_tokens, fake_vector
from fakes.gemini_server import GeminiFake
from fakes.openai_server import OpenAIFake

TEXTS = ["the first text", "a second one", "and a third"]


def llm_for(name: str, spec: dict) -> LLM:
    return LLM(config={"backends": {name: spec}}, environ={})


async def test_openai_asks_for_base64_and_decodes_it():
    async with OpenAIFake() as fake:
        llm = llm_for("openai", {"type": "openai", "base_url": f"{fake.url}/v1", "api_key": "sk-1"})
        response = await llm.embed("openai/text-embedding-3-large", TEXTS, dimensions=6)
        assert fake.last.path == "/v1/embeddings"
        assert fake.last.json == {"model": "text-embedding-3-large", "input": TEXTS, "encoding_format": "base64",
                                  "dimensions": 6}
        assert response.vectors == [fake_vector("text-embedding-3-large", t, 6) for t in TEXTS]
        await llm.aclose()


async def test_azure_embeds_on_the_deployment_with_its_api_key_header():
    async with OpenAIFake() as fake:
        llm = llm_for("azure", {"type": "azure", "base_url": fake.url, "api_key": "az-key", "api_version": "2024-10-21"})
        response = await llm.embed("azure/text-embedding-3-small", "hello")
        assert fake.last.path == "/openai/deployments/text-embedding-3-small/embeddings"
        assert fake.last.query == {"api-version": "2024-10-21"}
        assert fake.last.headers["api-key"] == "az-key"
        assert response.vectors == [fake_vector("text-embedding-3-small", "hello", 8)]
        assert response.cost_usd is not None  # a deployment named after the model bills OpenAI's price
        await llm.aclose()


@pytest.mark.parametrize("preset", ["ollama", "vllm", "together", "fireworks", "openrouter", "lmstudio", "custom"])
async def test_compatible_servers_get_floats(preset):
    assert PRESETS[preset].embeddings is not None
    async with OpenAIFake() as fake:
        llm = llm_for("srv", {"type": preset, "base_url": f"{fake.url}/v1", "api_key": "k"})
        response = await llm.embed("srv/nomic-embed-text", TEXTS)
        assert fake.last.path == "/v1/embeddings" and fake.last.json["encoding_format"] == "float"
        assert response.vectors == [fake_vector("nomic-embed-text", t, 8) for t in TEXTS]
        assert response.cost_usd is None  # an open-weight host's own price is not in the catalog
        await llm.aclose()


@pytest.mark.parametrize("preset", ["groq", "xai", "deepseek", "perplexity", "cerebras", "huggingface"])
def test_presets_without_an_embeddings_endpoint_say_so(preset):
    assert PRESETS[preset].embeddings is None


async def test_gemini_batch_embed_contents_with_task_type_and_dimensions():
    async with GeminiFake(models=["gemini-embedding-001"]) as fake:
        llm = llm_for("gemini", {"type": "gemini", "base_url": fake.url, "api_key": "test-key"})
        response = await llm.embed("gemini/gemini-embedding-001", TEXTS, input_type="document", dimensions=5)
        assert fake.requests[-1].path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
        assert fake.requests[-1].headers["x-goog-api-key"] == "test-key"
        body = fake.last_body
        assert body["requests"][0] == {"model": "models/gemini-embedding-001", "taskType": "RETRIEVAL_DOCUMENT",
                                       "outputDimensionality": 5, "content": {"parts": [{"text": TEXTS[0]}]}}
        assert response.vectors == [fake_vector("gemini-embedding-001:RETRIEVAL_DOCUMENT", t, 5) for t in TEXTS]
        # Gemini reports no tokens: the estimate is what is counted.
        assert response.usage.input_tokens == sum(fake_tokens(t) for t in TEXTS)
        await llm.aclose()


async def test_gemini_splits_past_100_texts():
    async with GeminiFake(models=["text-embedding-004"]) as fake:
        llm = llm_for("gemini", {"type": "gemini", "base_url": fake.url, "api_key": "test-key"})
        texts = [f"t{i}" for i in range(230)]
        response = await llm.embed("gemini/text-embedding-004", texts)
        assert [len(r.json["requests"]) for r in fake.requests] == [100, 100, 30]
        assert response.vectors == [fake_vector("text-embedding-004:None", t, 8) for t in texts]
        await llm.aclose()


async def test_gemini_errors_are_translated():
    async with GeminiFake(models=["text-embedding-004"]) as fake:
        llm = llm_for("gemini", {"type": "gemini", "base_url": fake.url, "api_key": "wrong"})
        with pytest.raises(Exception) as caught:
            await llm.embed("gemini/text-embedding-004", "x")
        assert type(caught.value).__name__ in {"AuthenticationError", "BadRequestError"}
        await llm.aclose()


async def test_cohere_v2_embed_with_input_type_and_billed_units():
    async with CohereFake(api_key="co-key") as fake:
        llm = llm_for("cohere", {"type": "cohere", "base_url": fake.url, "api_key": "co-key"})
        response = await llm.embed("cohere/embed-v4.0", TEXTS, input_type="query", dimensions=4)
        assert fake.last.path == "/v2/embed"
        assert fake.last.json == {"model": "embed-v4.0", "texts": TEXTS, "input_type": "search_query",
                                  "embedding_types": ["float"], "truncate": "NONE", "output_dimension": 4}
        assert response.vectors == [fake_vector("embed-v4.0:search_query", t, 4) for t in TEXTS]
        assert response.usage.input_tokens == sum(fake_tokens(t) for t in TEXTS)  # the billed units
        # Without an input type, texts are documents (Cohere's v3+ models require one).
        await llm.embed("cohere/embed-v4.0", "x")
        assert fake.last.json["input_type"] == "search_document"
        await llm.aclose()


async def test_cohere_batches_of_96_and_a_wrong_key():
    async with CohereFake(api_key="co-key") as fake:
        llm = llm_for("cohere", {"type": "cohere", "base_url": fake.url, "api_key": "co-key"})
        await llm.embed("cohere/embed-english-v3.0", [f"t{i}" for i in range(200)])
        assert [len(r.json["texts"]) for r in fake.requests] == [96, 96, 8]
        await llm.aclose()
        wrong = llm_for("cohere", {"type": "cohere", "base_url": fake.url, "api_key": "nope"})
        with pytest.raises(AuthenticationError):
            await wrong.embed("cohere/embed-english-v3.0", "x")
        await wrong.aclose()


async def test_mistral_is_openai_shaped():
    async with OpenAIFake() as fake:
        llm = llm_for("mistral", {"type": "mistral", "base_url": f"{fake.url}/v1", "api_key": "m"})
        response = await llm.embed("mistral/mistral-embed", TEXTS)
        assert fake.last.path == "/v1/embeddings" and fake.last.headers["authorization"] == "Bearer m"
        assert response.cost_usd is not None and response.model == "mistral-embed"
        await llm.aclose()


def test_base64_round_trips_float32():
    vector = fake_vector("m", "t", 7)
    assert decode_base64_vector(encode_base64_vector(vector)) == vector


@pytest.mark.parametrize(("body", "what"), [
    ({"data": [{"index": 0, "embedding": "!!not base64"}]}, "does not decode"),
    ({"data": [{"index": 0, "embedding": ["a"]}]}, "not a list of numbers"),
    ({"data": []}, "0 vectors for 1 texts"),
    ({"choices": []}, "not an embedding list"),
])
def test_answers_that_are_not_the_api_s_are_said_so(body, what):
    with pytest.raises(InvalidResponseError, match=what):
        openai_batch(body, EmbeddingRequest(model="m", inputs=["x"]), "openai")
