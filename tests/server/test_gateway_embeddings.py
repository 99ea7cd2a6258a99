"""``POST /v1/embeddings`` called with the official ``openai`` package over real HTTP (uvicorn on loopback,
provider fakes behind it): float and base64 vectors, failover, refusals as the client's exception
classes, usage in ``/v1/usage`` and the tenant's credits drawn on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import openai
import pytest

from agentadapter.llm import catalog
from agentadapter.llm.client import LLM
from agentadapter.llm.policy.retry import RetryPolicy
from fakes.cohere_server import CohereFake
from fakes.embedding import fake_tokens, fake_vector
from fakes.openai_server import OpenAIFake
from server.conftest import Api, AppFactory
from server.test_gateway import serve

SMALL = "openai/text-embedding-3-small"


@dataclass
class Gateway:
    api: Api
    llm: LLM
    openai_fake: OpenAIFake
    cohere_fake: CohereFake
    base_url: str
    key: str

    def client(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key or self.key, max_retries=0)


@pytest.fixture(params=["sqlite", "postgres"])
async def gateway(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Gateway]:
    async with OpenAIFake() as openai_fake, CohereFake() as cohere_fake:
        llm = LLM(
            config={"models": {"embedder": {"targets": [SMALL, "cohere/embed-v4.0"]}}},
            environ={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                     "COHERE_API_KEY": "co-test", "COHERE_BASE_URL": cohere_fake.url},
            retry=RetryPolicy(max_retries=0),
        )
        async with make_api(database=request.param, llm=llm) as api, serve(api.app) as base_url:
            key = await api.key(role="member")
            yield Gateway(api, llm, openai_fake, cohere_fake, base_url, key)


async def test_the_official_client_gets_vectors_in_base64_and_float(gateway: Gateway) -> None:
    texts = ["the first text", "a second one"]
    # The client asks for base64 by default and decodes it itself.
    created = await gateway.client().embeddings.create(model=SMALL, input=texts)
    assert created.object == "list" and created.model == SMALL
    assert [d.index for d in created.data] == [0, 1]
    expected = [fake_vector("text-embedding-3-small", t, 8) for t in texts]
    assert [d.embedding for d in created.data] == expected  # float32 values survive the round trip
    assert created.usage.prompt_tokens == sum(fake_tokens(t) for t in texts) == created.usage.total_tokens
    floats = await gateway.client().embeddings.create(model=SMALL, input="one", encoding_format="float",
                                                      dimensions=4, user="u-1")
    assert floats.data[0].embedding == fake_vector("text-embedding-3-small", "one", 4)
    assert gateway.openai_fake.last.json["dimensions"] == 4


async def test_an_alias_fails_over_to_cohere(gateway: Gateway) -> None:
    gateway.openai_fake.fail(500, {"error": {"message": "down"}})
    raw = await gateway.client().embeddings.with_raw_response.create(model="embedder", input=["x", "y"],
                                                                     encoding_format="float")
    created = raw.parse()
    assert [d.embedding for d in created.data] == [fake_vector("embed-v4.0:search_document", t, 8) for t in "xy"]
    assert raw.headers["x-agentadapter-route"] == "embedder"
    assert raw.headers["x-agentadapter-model"].startswith("cohere/")


@pytest.mark.parametrize(("kwargs", "param", "code"), [
    ({"input": [[1, 2, 3]]}, "input", "unsupported_value"),
    ({"input": [1, 2, 3]}, "input", "unsupported_value"),
    ({"input": []}, "input", "invalid_value"),
    ({"input": ["ok", ""]}, "input", "invalid_value"),
    ({"input": "x", "dimensions": 0}, "dimensions", "invalid_value"),
    ({"input": "x", "extra_body": {"truncate": "END"}}, "truncate", "unsupported_parameter"),
    ({"input": "word " * 20_000}, "input", "invalid_value"),  # longer than the model reads
])
async def test_bad_requests_are_400s_naming_the_field(gateway: Gateway, kwargs: dict, param: str, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await gateway.client().embeddings.create(model=SMALL, encoding_format="float", **kwargs)
    assert refused.value.code == code
    assert refused.value.body["param"] == param  # type: ignore[index]
    assert gateway.openai_fake.requests == []


async def test_an_unknown_model_is_a_404(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError):
        await gateway.client().embeddings.create(model="nonsense-provider/x", input="x")


async def test_usage_and_cost_reach_v1_usage(gateway: Gateway) -> None:
    texts = ["count me", "and me too"]
    end_user = f"end-user-{uuid.uuid4().hex[:8]}"  # the ledger may hold other tests' calls
    await gateway.client().embeddings.create(model=SMALL, input=texts, user=end_user)
    await gateway.llm.ledger.flush()
    (tagged,) = [t for t in await gateway.llm.ledger.totals(("end_user", "api_key")) if t.key["end_user"] == end_user]
    assert tagged.key["api_key"]
    response = await gateway.api.request("GET", "/v1/usage", as_="viewer",
                                         params={"group_by": "source,provider,model"})
    assert response.status_code == 200, response.text
    (row,) = response.json()["data"]
    tokens = sum(fake_tokens(t) for t in texts)
    price = catalog.embedding_model(SMALL).price
    assert (row["source"], row["provider"], row["model"]) == ("gateway", "openai", "text-embedding-3-small")
    assert (row["requests"], row["input_tokens"], row["output_tokens"]) == (1, tokens, 0)
    assert row["cost_usd"] == pytest.approx(tokens * price / 1_000_000)


async def test_credits_are_drawn_on_and_a_tenant_without_enough_gets_a_402(gateway: Gateway) -> None:
    api = gateway.api
    operator = {"Authorization": f"Bearer {await api.key(role='admin', scopes=('credits:admin',))}"}
    granted = await api.client.post("/v1/credits/grants", json={"amount_usd": 0.00001}, headers=operator)
    assert granted.status_code == 201, granted.text
    api.state.tenant_llms.invalidate()
    await gateway.client().embeddings.create(model=SMALL, input="a few words")  # 3 tokens: a tiny charge
    account = (await api.request("GET", "/v1/credits")).json()
    assert account["transactions"][0]["kind"] == "charge"
    assert account["balance_usd"] == pytest.approx(0.00001 - 3 * catalog.embedding_model(SMALL).price / 1e6)
    sent = len(gateway.openai_fake.requests)
    with pytest.raises(openai.APIStatusError) as refused:  # ~50,000 tokens cost more than what is left
        await gateway.client().embeddings.create(model=SMALL, input=["many words " * 2000] * 10)
    assert refused.value.status_code == 402 and refused.value.code == "insufficient_credits"
    assert len(gateway.openai_fake.requests) == sent
