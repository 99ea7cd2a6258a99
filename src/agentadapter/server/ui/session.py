"""The dashboard's sign-in session: a sealed cookie that carries the tenant's key, and CSRF tokens.

Signing in posts a tenant API key (or a JWT) from a form; it is checked by the same
:class:`~agentadapter.server.auth.Authenticator` as the API's bearer tokens, then sealed (Fernet:
encrypted and authenticated) with a key derived from ``AGENTADAPTER_SECRET_KEY`` into an
``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` when the page came over https). The browser never
holds the key in clear, never in a URL, and scripts cannot read it. Every request re-authenticates
the sealed key, so a revoked key ends its sessions within the authenticator's cache time, and every
server process that shares the secret accepts the cookie. Each session has a random id; its CSRF
token is an HMAC of that id, asked of every form post besides ``SameSite=Strict``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["COOKIE_NAME", "SESSION_MAX_AGE_S", "SealedSession", "SessionSealer"]

COOKIE_NAME = "agentadapter_ui"
SESSION_MAX_AGE_S = 12 * 3600
"""How long a sign-in lasts (the cookie's Max-Age, and the seal's age limit)."""


@dataclass(frozen=True, slots=True)
class SealedSession:
    """What the cookie holds, once opened."""

    credential: str
    session_id: str
    issued_at: int


class SessionSealer:
    """Seals and opens session cookies, and makes and checks their CSRF tokens."""

    def __init__(self, secret_key: str) -> None:
        # The newest of the comma-separated keys; derived (not used as is) so that the cookie key is never
        # the key that encrypts stored provider keys.
        newest = secret_key.split(",")[0].strip().encode()
        self._seal_key = hashlib.sha256(b"agentadapter-ui-session\x00" + newest).digest()
        self._csrf_key = hashlib.sha256(b"agentadapter-ui-csrf\x00" + newest).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(self._seal_key))

    def seal(self, credential: str) -> str:
        payload = {"k": credential, "s": secrets.token_urlsafe(16), "t": int(time.time())}
        return self._fernet.encrypt(json.dumps(payload).encode()).decode()

    def open(self, cookie: str | None) -> SealedSession | None:
        """The session, or None when the cookie is missing, forged, tampered with or older than its age."""
        if not cookie:
            return None
        try:
            payload = json.loads(self._fernet.decrypt(cookie.encode(), ttl=SESSION_MAX_AGE_S))
            return SealedSession(str(payload["k"]), str(payload["s"]), int(payload["t"]))
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None

    def csrf_token(self, session: SealedSession) -> str:
        return hmac.new(self._csrf_key, session.session_id.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session: SealedSession, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))
