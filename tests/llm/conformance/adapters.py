"""The conformance kit's server interface over each of our provider fakes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentadapter.llm.backends.anthropic import AnthropicBackend
from agentadapter.llm.backends.base import Backend, BackendConfig
from agentadapter.llm.backends.gemini import GeminiBackend
from agentadapter.llm.backends.openai_chat import OpenAIChatBackend
from agentadapter.llm.transport import Transport
from fakes.anthropic_server import AnthropicFake
from fakes.gemini_server import GeminiFake
from fakes.openai_server import OpenAIFake
from fakes.server import FakeServer

_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
                     500: "api_error"}
_GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}


class AnthropicKitServer:
    def __init__(self, fake: AnthropicFake) -> None:
        self.fake = fake

    def queue_text(self, text: str, *, input_tokens: int, output_tokens: int) -> None:
        self.fake.reply(text, usage={"input_tokens": input_tokens, "output_tokens": output_tokens})

    def queue_tool_calls(self, calls: list[tuple[str, dict[str, Any]]], *, input_tokens: int,
                         output_tokens: int) -> None:
        self.fake.reply(tool_uses=[{"name": n, "input": a} for n, a in calls],
                        usage={"input_tokens": input_tokens, "output_tokens": output_tokens})

    def queue_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.fake.error(status, _ANTHROPIC_ERRORS.get(status, "api_error"), message, headers=headers)

    def request_count(self) -> int:
        return len(self.fake.requests)

    def last_request_body(self) -> Any:
        return self.fake.requests[-1].json


class GeminiKitServer:
    def __init__(self, fake: GeminiFake) -> None:
        self.fake = fake

    @staticmethod
    def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
        return {"promptTokenCount": input_tokens, "candidatesTokenCount": output_tokens,
                "totalTokenCount": input_tokens + output_tokens}

    def queue_text(self, text: str, *, input_tokens: int, output_tokens: int) -> None:
        self.fake.reply(text, usage=self._usage(input_tokens, output_tokens))

    def queue_tool_calls(self, calls: list[tuple[str, dict[str, Any]]], *, input_tokens: int,
                         output_tokens: int) -> None:
        self.fake.reply(function_calls=[{"name": n, "args": a} for n, a in calls],
                        usage=self._usage(input_tokens, output_tokens))

    def queue_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.fake.fail_with(status, message, _GEMINI_STATUS.get(status, "INTERNAL"), headers=headers)

    def request_count(self) -> int:
        return len(self.fake.requests)

    def last_request_body(self) -> Any:
        return self.fake.requests[-1].json


@dataclass
class Kit:
    """One backend kind under the kit: its fake, the kit's view of it, and a backend factory."""

    name: str
    server: FakeServer
    kit_server: Any
    make: Callable[[], Backend]
    model: str


def build_kit(kind: str, transport: Transport[Any]) -> Kit:
    if kind in ("openai", "mistral", "ollama", "groq", "deepseek"):
        fake = OpenAIFake()
        path = {"openai": "/v1", "mistral": "/v1", "ollama": "/v1", "groq": "/openai/v1", "deepseek": "/v1"}[kind]
        key = None if kind == "ollama" else "test-key"

        def make_openai() -> Backend:
            config = BackendConfig(name=kind, type=kind, base_url=fake.url + path, api_key=key)
            return OpenAIChatBackend(config, transport=transport)

        return Kit(kind, fake, fake, make_openai, "some-model")
    if kind == "anthropic":
        anthropic_fake = AnthropicFake()

        def make_anthropic() -> Backend:
            config = BackendConfig(name="anthropic", type="anthropic", base_url=anthropic_fake.url,
                                   api_key="sk-ant-test-key")
            return AnthropicBackend(config, transport=transport)

        return Kit(kind, anthropic_fake, AnthropicKitServer(anthropic_fake), make_anthropic, "claude-sonnet-4-5")
    if kind == "gemini":
        gemini_fake = GeminiFake()

        def make_gemini() -> Backend:
            config = BackendConfig(name="gemini", type="gemini", base_url=gemini_fake.url, api_key="test-key")
            return GeminiBackend(config, transport=transport)

        return Kit(kind, gemini_fake, GeminiKitServer(gemini_fake), make_gemini, "gemini-2.5-flash")
    raise ValueError(kind)
