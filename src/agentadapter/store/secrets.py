"""Encryption at rest for tenants' provider keys: :class:`SecretBox`, Fernet under the server's secret key.

``AGENTADAPTER_SECRET_KEY`` holds one or more keys, comma-separated, newest first. The newest
encrypts; every one of them decrypts (cryptography's ``MultiFernet``), so a key is rotated by
putting the new one in front (``NEW,OLD``), running ``agentadapter secrets reencrypt`` and then
dropping the old one. A value that is a Fernet key (``agentadapter secrets generate``) is used as
it is; any other string - the development default, a passphrase - is stretched into a Fernet key
with HKDF-SHA256 (no salt, info :data:`HKDF_INFO`), so a development server works without a
generated key and the same string always gives the same key. Every value decrypted here is
registered with the log redaction (:func:`~agentadapter.observability.logging.register_secret`),
so a key never reaches a log line once the process has seen it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agentadapter.llm.errors import ConfigurationError
from agentadapter.observability.redact import register_secret

__all__ = ["HKDF_INFO", "SecretBox", "SecretKeyError", "fernet_key", "generate_key"]

HKDF_INFO = b"agentadapter provider keys v1"
"""HKDF's ``info`` for stretching a non-Fernet secret; changing it would orphan every stored key."""

_SETTING = "AGENTADAPTER_SECRET_KEY"


class SecretKeyError(ConfigurationError):
    """The secret key setting is unusable, or no key in it opens a stored value."""


def generate_key() -> str:
    """A new random Fernet key (URL-safe base64 of 32 bytes), for ``AGENTADAPTER_SECRET_KEY``."""
    return Fernet.generate_key().decode("ascii")


def fernet_key(secret: str) -> bytes:
    """The Fernet key for one entry of the setting: itself if it is one, else HKDF-SHA256 of it."""
    try:
        Fernet(secret)
    except ValueError:  # not 32 bytes of URL-safe base64 (binascii.Error is a ValueError too)
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret.encode("utf-8"))
        return base64.urlsafe_b64encode(derived)
    return secret.encode("ascii")


class SecretBox:
    """Encrypts with the newest key, decrypts with any of them."""

    def __init__(self, secrets: Sequence[str]) -> None:
        keys = [s.strip() for s in secrets if s.strip()]
        if not keys:
            raise SecretKeyError(
                f"{_SETTING} is empty; set it to a Fernet key (`agentadapter secrets generate` prints one)"
            )
        self._fernet = MultiFernet([Fernet(fernet_key(k)) for k in keys])
        self.key_count = len(keys)

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        """From the setting's text: keys separated by commas, newest first."""
        return cls(value.split(","))

    def encrypt(self, plaintext: str) -> str:
        register_secret(plaintext)
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            plaintext = self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise self._unopened() from exc
        register_secret(plaintext)
        return plaintext

    def rotate(self, token: str) -> str:
        """The same value encrypted anew with the newest key (a token no key opens raises)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as exc:
            raise self._unopened() from exc

    def _unopened(self) -> SecretKeyError:
        return SecretKeyError(
            f"a stored provider key cannot be decrypted with any of the {self.key_count} key(s) in {_SETTING}: the "
            "key it was encrypted with is missing. Put the old key back after the new one "
            f"({_SETTING}=NEW,OLD), then run `agentadapter secrets reencrypt`"
        )

    def __repr__(self) -> str:
        return f"SecretBox(keys={self.key_count})"
