"""``observability.redact``: key-shaped strings and registered secrets are masked; ordinary text is not."""

from __future__ import annotations

import hashlib
import secrets
import uuid

import pytest

from agentadapter.llm.errors import AuthenticationError, error_from_response
from agentadapter.observability.redact import MASK, mask_url, redact, redact_text, register_secret

# Shaped like the real ones (random bodies), never real keys.
KEYS = {
    "openai": "sk-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" + "T3BlbkFJ",
    "openai project": "sk-proj-" + "x7Kp2_Lq9-Zr4Tm8Wv1Ns6Yb3Hc5Jd0Fg" + "T3BlbkFJ",
    "anthropic": "sk-ant-api03-" + "Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz1Xc3Vb5Nm7" + "-AbCdEfAA",
    "gemini": "AIzaSy" + "B1c2D3e4F5g6H7i8J9k0L1m2N3o4P5q6R",
    "groq": "gsk_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4y5Z6",
    "xai": "xai-" + "Zy9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa9Zy8Xw7Vu6Ts5Rq4Po3Nm2Lk1Ji0Hg9Fe8Dc7Ba",
    "hugging face": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz123456",
    "replicate": "r8_" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Y",
    "aws": "AKIA" + "IOSFODNN7EXAMPLE",
    "github": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "slack": "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZW5hbnQiLCJyb2xlIjoiYWRtaW4ifQ.c2lnbmF0dXJlLWJ5dGVz_-x",
    "our api key": "aa_" + "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
    "generic random": "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zQ7",
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_every_known_key_format_is_masked_where_it_appears(kind: str) -> None:
    key = KEYS[kind]
    for text in (key, f"Incorrect API key provided: {key}.", f'{{"detail": "{key}"}}', f"({key})"):
        cleaned = redact_text(text)
        assert key not in cleaned and MASK in cleaned, (kind, cleaned)


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abc.def-123456", "Authorization: Bearer [REDACTED]"),
    ("authorization: bearer AbCdEfGhIjKlMnOpQrStUv", "authorization: bearer [REDACTED]"),
    ("Basic dXNlcjpwYXNzd29yZA==", "Basic [REDACTED]"),
    ("GET https://host/v1beta/models/m:generateContent?key=AIzaXYZ&alt=sse",
     "GET https://host/v1beta/models/m:generateContent?key=[REDACTED]&alt=sse"),
    ("https://host/x?alt=sse&api_key=abc123", "https://host/x?alt=sse&api_key=[REDACTED]"),
    ("https://host/x?access_token=abc123#frag", "https://host/x?access_token=[REDACTED]#frag"),
    ("configured with api_key=short123 and more", "configured with api_key=[REDACTED] and more"),
    ('{"api_key": "plainvalue", "model": "m"}', '{"api_key": "[REDACTED]", "model": "m"}'),
    ("postgresql://user:s3cret@db:5432/app", "postgresql://user:***@db:5432/app"),
    ("postgresql+asyncpg://user:p@ss@db/app", "postgresql+asyncpg://user:***@db/app"),
    ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("amqp://guest:guest@localhost:5672//", "amqp://guest:***@localhost:5672//"),
    ("rediss://default:pw@cache.example.com:6380", "rediss://default:***@cache.example.com:6380"),
    ("not a URL: postgresql//app:s3cret@db/x", "not a URL: postgresql//app:***@db/x"),
])
def test_credentials_in_headers_queries_and_urls_are_masked_keeping_their_names(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize("text", [
    "ContextWindowExceededError: anthropic answered HTTP 400: prompt is too long: 210000 tokens > 200000 maximum "
    "(anthropic, model claude-sonnet-4-5); see the provider's message above",
    "Rate limit reached for gpt-4o-mini in organization org-abc on tokens per min (TPM): Limit 200000, Used 1999",
    "Bearer authentication failed; Basic authentication is not supported",
    "the password is wrong; the token expired; set OPENAI_API_KEY or pass api_key=...",
    f"run {uuid.uuid4()} failed; request id req_{uuid.uuid4().hex} and digest {hashlib.sha256(b'x').hexdigest()}",
    "msg_01XFDUDYJgAACzvnptvVoYEL req_011CSHoEeqs5C35K2UUqR7Fy chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "models: openai/gpt-4o-mini-2024-07-18, together/meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo, "
    "local/mlx/mlx-community/Qwen2.5-0.5B-Instruct-4bit",
    "ThisIsSomeCamelCaseName2024Version and this-is-a-very-long-hyphenated-phrase-2024-Edition",
    "/home/user/.venv/lib/python3.12/site-packages/agentadapter/llm/backends/openai_chat.py line 213",
    "cannot reach openai at http://127.0.0.1:8000/v1/chat/completions; postgresql://postgres@127.0.0.1/db",
    "task-abcdefghijklmnopqrstuv uses sk-learn; mail me at someone@example.com",
    "",
])
def test_ordinary_text_and_identifiers_pass_unchanged(text: str) -> None:
    assert redact_text(text) == text


def test_generated_tokens_are_masked_by_their_randomness() -> None:
    # The rule is conservative (a token with too few digits or capitals by chance passes), so it is
    # a fallback behind the formats and the registered values: most, not all, random tokens.
    tokens = [secrets.token_urlsafe(32) for _ in range(200)]
    masked = sum(token not in redact_text(f"token {token} refused") for token in tokens)
    assert masked >= 180, masked


def test_registered_values_are_masked_whatever_their_shape() -> None:
    odd = "my.sec/ret:value-" + secrets.token_hex(4)
    plain = "plainsecret" + secrets.token_hex(4)
    register_secret(odd)
    register_secret(plain)
    register_secret("short")  # too short to track: masking it would mangle words
    text = f"failed with {odd}, with {plain} and with prefix{plain}; a short word stays"
    assert redact_text(text) == f"failed with {MASK}, with {MASK} and with prefix{MASK}; a short word stays"


def test_redact_walks_json_values_and_masks_secret_named_fields() -> None:
    key = KEYS["openai"]
    value = {"error": {"message": f"bad key {key}", "code": 401, "param": None},
             "headers": {"Authorization": "anything", "x-request-id": "req_1"},
             "list": [key, 1.5, True], "raw": f"echo {key}".encode()}
    cleaned = redact(value)
    assert cleaned == {"error": {"message": f"bad key {MASK}", "code": 401, "param": None},
                       "headers": {"Authorization": MASK, "x-request-id": "req_1"},
                       "list": [MASK, 1.5, True], "raw": f"echo {MASK}".encode()}


def test_mask_url_serves_every_url_kind() -> None:
    assert mask_url("postgresql://app:pw@db.internal:5432/agentadapter") == "postgresql://app:***@db.internal:5432/agentadapter"
    assert mask_url("amqp://user:pa55@rabbit:5672/vhost") == "amqp://user:***@rabbit:5672/vhost"
    assert mask_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert mask_url("sqlite+aiosqlite:////tmp/data/agentadapter.db") == "sqlite+aiosqlite:////tmp/data/agentadapter.db"


def test_a_provider_error_is_clean_where_it_is_made() -> None:
    key = KEYS["openai project"]
    body = {"error": {"message": f"Incorrect API key provided: {key}. You can find your API key at "
                                 "https://platform.openai.com/account/api-keys.", "type": "invalid_request_error",
                      "code": "invalid_api_key"}}
    error = error_from_response(401, body, {"x-request-id": "req_abc", "www-authenticate": f"Bearer {key}"},
                                provider="openai", model="gpt-4o-mini")
    assert isinstance(error, AuthenticationError)
    for text in (str(error), error.message, repr(error.body), repr(error.headers)):
        assert key not in text
    assert "Incorrect API key provided: [REDACTED]. You can find your API key at" in str(error)
    assert error.code == "invalid_api_key" and error.request_id == "req_abc" and error.status == 401
    plain = error_from_response(400, {"error": {"message": "max_tokens is too large: 999999"}}, {},
                                provider="openai", model="gpt-4o-mini")
    assert "max_tokens is too large: 999999" in str(plain)
