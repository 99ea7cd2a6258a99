"""Secret masking for anything that leaves the process: error messages, logs, stored run errors.

:func:`redact_text` replaces, in any text:

- the exact values of secrets the process knows (:func:`register_secret`: provider keys from the
  environment and config, tenants' stored keys when they are decrypted);
- key-shaped strings in the formats providers issue (``sk-...``, ``sk-ant-...``, ``sk-proj-...``,
  ``AIza...``, ``gsk_...``, ``xai-...``, ``hf_...``, ``r8_...``, ``pplx-...``, AWS ``AKIA...``,
  GitHub ``ghp_...``, Slack ``xox?-...``, our own ``aa_...`` API keys) and JWTs;
- the credential of ``Bearer <token>`` / ``Basic <token>``, of ``?api_key=`` / ``&key=`` /
  ``?token=`` query parameters and ``api_key=...`` assignments, and the password of a URL
  (``scheme://user:***@host``, and ``user:***@host`` where the scheme is missing or mistyped);
- long high-entropy tokens: a run of at least 32 letters, digits, ``-`` and ``_`` (or a segment of
  24 between many separators) that mixes upper case, lower case and digits, is not mostly made of
  words, and carries at least 3.5 bits of entropy per character. Ordinary prose, paths, model
  names, CamelCase identifiers, UUIDs, hex digests and providers' ids (``chatcmpl-...``,
  ``msg_...``) do not meet this, so they pass unchanged.

:func:`redact` does the same over JSON-like values and also masks every value whose key names a
secret (``api_key``, ``authorization``, ...). :func:`mask_url` masks one URL's password (database,
Redis and broker URLs printed by the CLI). This module imports nothing of AgentAdapter, so every
layer (``llm/`` translating provider errors, ``observability.logging``, the orchestrator, the
server) can use it.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

__all__ = [
    "MASK",
    "SENSITIVE_KEYS",
    "known_secret_count",
    "mask_url",
    "redact",
    "redact_text",
    "register_secret",
    "register_secrets",
]

MASK = "[REDACTED]"
URL_PASSWORD_MASK = "***"
MIN_SECRET_LENGTH = 8
"""Registered values shorter than this are not tracked: masking them would mangle ordinary words."""

SENSITIVE_KEYS = frozenset({
    "api_key", "apikey", "api-key", "authorization", "x-api-key", "x-goog-api-key", "proxy-authorization",
    "cookie", "set-cookie", "secret", "secret_key", "client_secret", "password", "passwd", "token",
    "access_token", "refresh_token", "id_token",
})
"""Field names (compared in lower case) whose values are always masked, whatever they hold."""

# ---------------------------------------------------------------------------------------- patterns

# A key starts where no key character precedes it ("task-..." is not "sk-...").
_START = r"(?<![A-Za-z0-9_\-])"
_KEY_FORMATS = (
    r"sk-[A-Za-z0-9_\-]{16,}",               # OpenAI sk-/sk-proj-, Anthropic sk-ant-, DeepSeek, OpenRouter
    r"AIza[0-9A-Za-z_\-]{30,}",              # Google (Gemini) API keys
    r"gsk_[A-Za-z0-9]{20,}",                 # Groq
    r"xai-[A-Za-z0-9]{20,}",                 # xAI
    r"hf_[A-Za-z0-9]{20,}",                  # Hugging Face
    r"r8_[A-Za-z0-9]{20,}",                  # Replicate
    r"pplx-[A-Za-z0-9]{20,}",                # Perplexity
    r"nvapi-[A-Za-z0-9_\-]{20,}",            # NVIDIA
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",            # AWS access key ids
    r"gh[pousr]_[A-Za-z0-9]{20,}",           # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{20,}",         # GitHub fine-grained tokens
    r"glpat-[A-Za-z0-9_\-]{20,}",            # GitLab
    r"xox[abposr]-[A-Za-z0-9\-]{10,}",       # Slack
    r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
    r"aa_[A-Za-z0-9_\-]{32,}",               # AgentAdapter's own tenant API keys
    r"eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",  # JWTs (an empty signature: alg none)
)
# One alternation, so a text is scanned once. Every rule but two starts where no key character
# precedes (the lookbehind fails fast mid-word, which keeps the scan cheap); named groups say which
# rule matched. Compiled on first use (tens of milliseconds), not at import.
_PATTERN_SOURCE = (
    "|".join((
        _START + "(?:" + "|".join((
            # scheme://user:password@host -> keep everything but the password (up to the authority's last @)
            r"(?P<url>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@?#]*:)[^\s/?#]+(?=@)",
            # user:password@host without a scheme (a mistyped URL quoted back by an error)
            r"(?P<userinfo>[A-Za-z0-9._%+\-]+:)[^\s@/?#'\"]+(?=@[A-Za-z0-9\[])",
            # Authorization schemes: keep the scheme word. A token must look like one (a digit or a
            # symbol, or long), so that "Bearer authentication" stays prose.
            r"(?P<auth>(?i:bearer|basic)\s+)(?=[A-Za-z0-9._~+/=\-]*[0-9._~+/=\-]|[A-Za-z]{20})"
            r"[A-Za-z0-9._~+/=\-]{8,}",
            # api_key=... written out: keep the name.
            r"(?P<assign>(?i:api[_\-]?key|apikey|access[_\-]?token|refresh[_\-]?token|client[_\-]?secret"
            r"|secret[_\-]?key|password|passwd)\s*=\s*[\"']?)[^\s\"'&,;<>]{4,}",
            *_KEY_FORMATS,
            # Any other run of key characters: a registered secret, or a high-entropy token (the
            # callback decides, see _looks_random).
            r"(?P<run>[A-Za-z0-9_\-]{8,})(?![A-Za-z0-9_\-])",
        )) + ")",
        # ?api_key=... &key=... in URLs: keep the name.
        r"(?P<param>[?&;](?i:api[_\-]?key|key|access[_\-]?token|refresh[_\-]?token|id[_\-]?token|token"
        r"|client[_\-]?secret|secret|password|passwd|pwd|sig|signature|auth|x-amz-signature|x-goog-signature)=)"
        r"[^&#\s\"'<>]+",
        # "api_key": "..." inside quoted JSON text
        r"(?P<json>\"(?i:api[_\-]?key|apikey|x-api-key|authorization|access[_\-]?token|refresh[_\-]?token"
        r"|client[_\-]?secret|secret|password)\"\s*:\s*\")[^\"]{4,}(?=\")",
    ))
)


@cache
def _pattern() -> re.Pattern[str]:
    return re.compile(_PATTERN_SOURCE)


_SEPARATORS = re.compile(r"[_\-]")
_SEGMENT = re.compile(r"[A-Za-z0-9]{24,}")
_HEX_OR_UUID = re.compile(r"[0-9a-fA-F\-]+")
_WORDISH = re.compile(r"[A-Z]?[a-z]{3,}")
# Providers' object and request ids are random too, but they name things rather than grant access.
_ID_PREFIX = re.compile(
    r"(?:chatcmpl|cmpl|resp|msg|req|call|toolu|run|step|file|org|asst|thread|batch|ft|gen|evt|chunk|user)[-_]"
)
MIN_RANDOM_LENGTH = 32
MIN_ENTROPY_BITS = 3.5


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    length = len(text)
    return -sum(n / length * math.log2(n / length) for n in Counter(text).values())


def _random_segment(segment: str) -> bool:
    uppers = sum(c.isupper() for c in segment)
    lowers = sum(c.islower() for c in segment)
    digits = sum(c.isdigit() for c in segment)
    if uppers < 2 or lowers < 2 or digits < 2:
        return False
    # Words (CamelCase identifiers, slugs) put most letters in runs of 3+ lower-case letters; a
    # generated string rarely does.
    if sum(len(word) for word in _WORDISH.findall(segment)) > 0.5 * len(segment):
        return False
    return _entropy(segment) >= MIN_ENTROPY_BITS


def _looks_random(token: str) -> bool:
    """A conservative test for a generated secret: long, mixed case with digits, close to random."""
    if len(token) < MIN_RANDOM_LENGTH or _HEX_OR_UUID.fullmatch(token) or _ID_PREFIX.match(token):
        return False  # digests, UUIDs and ids (chatcmpl-..., msg_...) are identifiers, not credentials
    separators = len(_SEPARATORS.findall(token))
    if separators * 10 <= len(token):
        # Base64url keys carry a few - and _ by chance: judge the whole token.
        return _random_segment(_SEPARATORS.sub("", token))
    return any(_random_segment(segment) for segment in _SEGMENT.findall(token))


def _replace(match: re.Match[str]) -> str:
    group = match.lastgroup
    if group in ("url", "userinfo"):
        return match.group(group) + URL_PASSWORD_MASK
    if group in ("auth", "param", "assign", "json"):
        return match.group(group) + MASK
    if group == "run":
        token = match.group("run")
        return MASK if token in _secrets or _looks_random(token) else token
    return MASK


# ------------------------------------------------------------------------------------ known secrets

_secrets: set[str] = set()
"""Every registered value. Those made only of key characters are found by the scan above (a set
look-up per run of such characters, whatever their number); the others are searched one by one."""
_searched: list[str] = []
"""The values searched as substrings: the odd ones, and every one while there are few (a key glued
to other key characters, ``prefixSECRET``, is then found too)."""
_SEARCH_ALL_UP_TO = 32
_secrets_lock = threading.Lock()
_KEY_CHARS = re.compile(r"[A-Za-z0-9_\-]+")


def register_secret(secret: str | None) -> None:
    """Mask this exact value wherever it appears from now on (values under 8 characters are ignored)."""
    if not secret or len(secret) < MIN_SECRET_LENGTH or secret in _secrets:
        return
    with _secrets_lock:
        if secret in _secrets:
            return
        _secrets.add(secret)
        few = len(_secrets) <= _SEARCH_ALL_UP_TO
        searched = [value for value in _secrets if few or not _KEY_CHARS.fullmatch(value)]
        # Longest first, so a secret that contains another is masked whole.
        _searched[:] = sorted(searched, key=len, reverse=True)


def register_secrets(secrets: Iterable[str | None]) -> None:
    """:func:`register_secret` for each value."""
    for secret in secrets:
        register_secret(secret)


def known_secret_count() -> int:
    """How many exact values are registered (for diagnostics; the values are never exposed)."""
    return len(_secrets)


# -------------------------------------------------------------------------------------------- API


def redact_text(text: str) -> str:
    """``text`` with every known secret and key-shaped string masked; other text is unchanged."""
    if not text:
        return text
    for secret in _searched:
        if secret in text:
            text = text.replace(secret, MASK)
    return _pattern().sub(_replace, text)


_PLAIN = (int, float, bool, type(None))


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of a JSON-like ``value`` with secret-named fields masked and every string cleaned.

    Mappings, lists and tuples are walked (tuples come back as lists); bytes are cleaned as UTF-8
    text; any other object is returned as it is.
    """
    if key is not None and value and key.lower() in SENSITIVE_KEYS:
        return MASK
    kind = type(value)
    if kind in _PLAIN:  # the common case, checked without the ABC machinery below
        return value
    if kind is str:
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", errors="replace")).encode()
    return value


def mask_url(url: str) -> str:
    """A URL with its password (and any secret query parameter) masked: ``postgresql://user:***@host/db``.

    Serves every scheme (PostgreSQL, Redis, AMQP, HTTP); a URL without a password comes back unchanged.
    """
    return redact_text(url)
