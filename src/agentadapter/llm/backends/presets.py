"""The presets table: every provider we know by name, and how to reach it.

A preset is data: the backend type that speaks its wire format, the default base URL, the
environment variables for its key and base URL (the vendor SDK's own names first), how the key is
sent, and the provider's quirks. One OpenAI-chat backend serves the whole OpenAI-compatible family
through these entries. :data:`TYPE_ALIASES` accepts the seeds' backend ``type`` names. A preset
whose ``embeddings`` holds limits serves OpenAI's ``POST /embeddings``; the others have no embeddings
endpoint (Groq, xAI, DeepSeek, Perplexity, Cerebras, Inference.net, and the Hugging Face router,
whose OpenAI-compatible ``/v1`` is chat only), and a call there is refused before any request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentadapter.llm.embeddings import EmbeddingLimits
from agentadapter.llm.errors import ConfigurationError

AuthStyle = Literal["bearer", "api-key", "x-api-key", "x-goog-api-key", "none"]


@dataclass(slots=True, frozen=True)
class Preset:
    """How to reach one provider."""

    name: str
    backend: str
    """Registry key of the backend class that speaks this provider's wire format."""
    base_url: str | None
    api_key_env: tuple[str, ...] = ()
    base_url_env: tuple[str, ...] = ()
    auth: AuthStyle = "bearer"
    key_required: bool = True
    """Local servers (Ollama, LM Studio, vLLM, SGLang) answer without a key."""
    stream_usage_option: bool = True
    """Send ``stream_options: {include_usage: true}`` (not every compatible server accepts it)."""
    reasoning_model_settings: bool = False
    """OpenAI-style reasoning models here take ``max_completion_tokens`` and no temperature."""
    tool_call_id_style: Literal["any", "mistral"] = "any"
    label: str = ""
    needs_base_url: bool = True
    """False for backends that call no URL (the offline test backend, in-process local models)."""
    embeddings: EmbeddingLimits | None = None
    """What one ``POST /embeddings`` may carry, for providers that serve embeddings (None: they do not)."""
    embedding_base64: bool = False
    """Ask for vectors as base64 (a quarter of the JSON): OpenAI and Azure; other servers may not offer it."""
    cloud_credentials: bool = False
    """Authenticates with its cloud's own credentials (AWS's chain, Google's application-default), not a key."""

    @property
    def local(self) -> bool:
        return not self.key_required and not self.cloud_credentials


def _env(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    upper = name.upper()
    return (f"{upper}_API_KEY",), (f"{upper}_BASE_URL",)


def _compat(
    name: str,
    base_url: str | None,
    label: str,
    *,
    api_key_env: tuple[str, ...] | None = None,
    base_url_env: tuple[str, ...] | None = None,
    **quirks: object,
) -> Preset:
    default_key_env, default_url_env = _env(name)
    return Preset(
        name=name,
        backend="openai_chat",
        base_url=base_url,
        api_key_env=api_key_env or default_key_env,
        base_url_env=base_url_env or default_url_env,
        label=label,
        **quirks,  # type: ignore[arg-type]
    )


_OPENAI_EMBEDDINGS = EmbeddingLimits(max_inputs=2048, max_input_tokens=8191, max_batch_tokens=300_000)
"""OpenAI's published limits: 2,048 inputs, 8,191 tokens each, 300,000 tokens in all per request."""
_COMPAT_EMBEDDINGS = EmbeddingLimits(max_inputs=256, max_input_tokens=8191, max_batch_tokens=65_536)
"""Compatible servers publish no common limit: modest batches, which any of them accepts."""
_MISTRAL_EMBEDDINGS = EmbeddingLimits(max_inputs=128, max_input_tokens=8192, max_batch_tokens=16_384)
"""Mistral refuses a request of more than 16,384 tokens in all."""

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _compat("openai", "https://api.openai.com/v1", "OpenAI", reasoning_model_settings=True,
                embeddings=_OPENAI_EMBEDDINGS, embedding_base64=True),
        _compat(
            "azure",
            None,
            "Azure OpenAI",
            api_key_env=("AZURE_OPENAI_API_KEY",),
            base_url_env=("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_BASE_URL"),
            auth="api-key",
            reasoning_model_settings=True,
            embeddings=_OPENAI_EMBEDDINGS,
            embedding_base64=True,
        ),
        _compat("groq", "https://api.groq.com/openai/v1", "Groq"),
        _compat("xai", "https://api.x.ai/v1", "xAI (Grok)"),
        _compat("deepseek", "https://api.deepseek.com/v1", "DeepSeek"),
        _compat(
            "mistral", "https://api.mistral.ai/v1", "Mistral", stream_usage_option=False,
            tool_call_id_style="mistral", embeddings=_MISTRAL_EMBEDDINGS,
        ),
        _compat("together", "https://api.together.xyz/v1", "Together AI", embeddings=_COMPAT_EMBEDDINGS),
        _compat("perplexity", "https://api.perplexity.ai", "Perplexity", stream_usage_option=False),
        _compat("openrouter", "https://openrouter.ai/api/v1", "OpenRouter", embeddings=_COMPAT_EMBEDDINGS),
        _compat("fireworks", "https://api.fireworks.ai/inference/v1", "Fireworks AI", embeddings=_COMPAT_EMBEDDINGS),
        _compat("cerebras", "https://api.cerebras.ai/v1", "Cerebras"),
        _compat(
            "huggingface", "https://router.huggingface.co/v1", "Hugging Face (router)",
            api_key_env=("HF_TOKEN", "HUGGINGFACE_API_KEY"), base_url_env=("HUGGINGFACE_BASE_URL",),
        ),
        _compat(
            "inference_net", "https://api.inference.net/v1", "Inference.net",
            api_key_env=("INFERENCE_NET_API_KEY", "INFERENCE_API_KEY"),
            base_url_env=("INFERENCE_NET_BASE_URL", "INFERENCE_BASE_URL"),
        ),
        _compat("ollama", "http://localhost:11434/v1", "Ollama", key_required=False, embeddings=_COMPAT_EMBEDDINGS),
        _compat("lmstudio", "http://localhost:1234/v1", "LM Studio", key_required=False, embeddings=_COMPAT_EMBEDDINGS),
        _compat("vllm", "http://localhost:8000/v1", "vLLM server", key_required=False, embeddings=_COMPAT_EMBEDDINGS),
        _compat("sglang", "http://localhost:30000/v1", "SGLang server", key_required=False,
                embeddings=_COMPAT_EMBEDDINGS),
        _compat("custom", None, "Any OpenAI-compatible URL", key_required=False, embeddings=_COMPAT_EMBEDDINGS),
        Preset(
            "anthropic", "anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",),
            ("ANTHROPIC_BASE_URL",), auth="x-api-key", label="Anthropic",
        ),
        Preset(
            "gemini", "gemini", "https://generativelanguage.googleapis.com",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"), ("GEMINI_BASE_URL",), auth="x-goog-api-key",
            label="Google Gemini",
        ),
        Preset(
            "cohere", "cohere", "https://api.cohere.com", ("COHERE_API_KEY", "CO_API_KEY"),
            ("COHERE_BASE_URL",), label="Cohere",
        ),
        Preset(
            "bedrock", "bedrock", None, ("AWS_BEARER_TOKEN_BEDROCK",),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "BEDROCK_BASE_URL"), key_required=False, needs_base_url=False,
            cloud_credentials=True, label="Amazon Bedrock (Converse; AWS credentials, SigV4)",
        ),
        Preset(
            "vertex", "vertex", None, (), ("VERTEX_BASE_URL",), auth="none", key_required=False,
            needs_base_url=False, cloud_credentials=True,
            label="Google Vertex AI (Gemini and Claude; application-default credentials)",
        ),
        Preset("test", "test", None, auth="none", key_required=False, label="Offline test backend",
               needs_base_url=False),
        Preset("local", "local", None, auth="none", key_required=False,
               label="In-process local models (MLX, transformers, vLLM)", needs_base_url=False),
    )
}

# The seeds' backend `type` names and other common spellings.
TYPE_ALIASES: dict[str, str] = {
    "claude": "anthropic",
    "grok": "xai",
    "azure_openai": "azure",
    "chat_completions": "custom",
    "chatcompletion": "custom",
    "openai_compatible": "custom",
    "inference": "inference_net",
    "google": "gemini",
    "lm_studio": "lmstudio",
    "hf": "huggingface",
    "aws_bedrock": "bedrock",
    "vertex_ai": "vertex",
    "google_vertex": "vertex",
}


def canonical_type(name: str) -> str:
    """The preset name for a type or alias (``claude`` -> ``anthropic``)."""
    key = name.strip().lower().replace("-", "_")
    key = TYPE_ALIASES.get(key, key)
    return key if key in PRESETS else name


def get_preset(name: str) -> Preset:
    key = canonical_type(name)
    preset = PRESETS.get(key)
    if preset is None:
        raise ConfigurationError(
            f"unknown provider {name!r}; known providers: {', '.join(sorted(PRESETS))}. "
            "For another OpenAI-compatible server, add it under `backends:` in agentadapter.yaml "
            "(type: custom, base_url: ...)"
        )
    return preset
