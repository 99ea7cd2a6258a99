"""Who is calling: tenant API keys and JWT bearer tokens, turned into a :class:`Principal`.

``Authorization: Bearer <token>`` carries either

- a tenant API key (``aa_...``, made by ``agentadapter keys create``): its SHA-256 is looked up,
  and the caller is the tenant's default user with the key's role and scopes; or
- a JWT, so that a front end (Next.js) can call the API with its users' sessions: HS256 with the
  shared ``AGENTADAPTER_JWT_SECRET``, or RS256 with a key from ``AGENTADAPTER_JWKS_URL`` (fetched
  asynchronously and cached; an unknown ``kid`` refetches, at most every few seconds). ``exp`` and
  ``sub`` are required; ``nbf`` is checked when present; ``exp``, ``nbf`` and ``iat`` must be JSON
  numbers (``jwt_claims.py``); ``iss`` and ``aud`` are required and checked when
  ``AGENTADAPTER_JWT_ISSUER`` / ``AGENTADAPTER_JWT_AUDIENCE`` are set. The tenant comes from the
  ``tenant_id`` claim (a tenant id) or ``tenant`` (its name), the user from ``sub`` (created on first
  sight), the role from ``role`` or ``roles``. A ``sub`` that names a reserved subject - the tenant's
  default user, whom API keys act as, or an API key's or the system's actor name - in any spelling is
  refused: a token never acts as an API key.

Roles: ``viewer`` reads, ``member`` also writes and runs, ``admin`` also reads the audit log.
Scopes (``agents:read``, ``runs:*``, ``*:read``) narrow a key or token further; tokens' OAuth scopes
without a colon (``openid``) are ignored. Verified keys and JWT users are cached for
``AGENTADAPTER_AUTH_CACHE_S`` seconds so that the hot path makes no database round trip; keys found
invalid are remembered too (``AGENTADAPTER_AUTH_NEGATIVE_CACHE_S``), and a client address whose
credentials keep failing is throttled (``auth_throttle.py``). PyJWT (and cryptography under it,
~9 MB) is imported only by servers that accept JWTs.
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from agentadapter.config import Settings
from agentadapter.redis_connections import RedisConnections
from agentadapter.server.auth_throttle import AuthThrottle, ExpiringSet, build_auth_throttle
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.settings import ServerSettings
from agentadapter.store import api_keys, tenants, users
from agentadapter.store.database import Database
from agentadapter.store.errors import RecordNotFound
from agentadapter.store.models import Tenant

__all__ = [
    "RESERVED_SUBJECTS",
    "RESERVED_SUBJECT_PREFIXES",
    "ROLE_RANK",
    "Authenticator",
    "JWKSCache",
    "JWTVerifier",
    "Principal",
    "is_reserved_subject",
]

ROLE_RANK = {"viewer": 0, "member": 1, "admin": 2}
_ACTION_ROLE = {"read": "viewer", "write": "member", "admin": "admin"}
_BEARER = 'Bearer realm="agentadapter"'
API_KEY_SUBJECT_PREFIX = "api_key:"
RESERVED_SUBJECTS = frozenset({users.DEFAULT_SUBJECT, "system", "cli", "operator", "api_key"})
"""Subjects no JWT may carry: the tenant's default user (whom API keys act as) and the actor names the
audit log and the credit ledger give the command line and the system."""
RESERVED_SUBJECT_PREFIXES = (API_KEY_SUBJECT_PREFIX, "system:", "cli:")
"""Prefixes of the subjects API keys and the system act under (``api_key:aa_1234abcd``)."""
MAX_SUBJECT_CHARS = 255  # users.subject is a VARCHAR(255)
MAX_TENANT_CLAIM_CHARS = 255


def _folded(value: str) -> str:
    """``value`` as lookups and readers could confuse it: NFKC, outer spaces dropped, case folded."""
    return unicodedata.normalize("NFKC", value).strip().casefold()


def is_reserved_subject(subject: str) -> bool:
    """Whether ``subject`` names, in any spelling, a subject that only API keys or the system may act as."""
    folded = _folded(subject)
    return folded in RESERVED_SUBJECTS or folded.startswith(RESERVED_SUBJECT_PREFIXES)


def _has_control_characters(value: str) -> bool:
    # NUL is refused by PostgreSQL in text columns and a lone surrogate (Cs, which JSON's \ud800 gives)
    # cannot be encoded at all; format characters (zero-width space) would let "de\u200bfault" pass.
    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: tenant, user, role, and how they proved it."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    kind: Literal["api_key", "jwt"]
    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    key_id: uuid.UUID | None = None

    @property
    def actor(self) -> tuple[str, str]:
        """``(actor_type, actor_id)`` for the audit log."""
        if self.kind == "api_key":
            return "api_key", str(self.key_id)
        return "user", str(self.user_id)

    def can(self, resource: str, action: str) -> bool:
        needed = _ACTION_ROLE[action]
        if ROLE_RANK.get(self.role, -1) < ROLE_RANK[needed]:
            return False
        if not self.scopes:
            return True
        wanted = {f"{resource}:{action}", f"{resource}:*", f"*:{action}", "*:*", "*"}
        if action == "read":  # a write scope includes reading
            wanted |= {f"{resource}:write", "*:write"}
        return bool(self.scopes & wanted)


def _unauthorized(message: str, code: str) -> HTTPProblem:
    return HTTPProblem(401, message, code=code, headers={"WWW-Authenticate": _BEARER})


def _invalid_api_key() -> HTTPProblem:
    return _unauthorized("the API key is not valid (unknown, revoked or expired); make a new one with "
                         "`agentadapter keys create --tenant NAME`", "invalid_api_key")


def _our_scopes(values: Any) -> frozenset[str]:
    if isinstance(values, str):
        values = values.split()
    if not isinstance(values, list | tuple | set | frozenset):
        return frozenset()
    return frozenset(str(v) for v in values if isinstance(v, str) and (":" in v or v == "*"))


def _subject_of(claims: Mapping[str, Any]) -> str:
    """The token's ``sub``, refused when it cannot be a user's subject or names a reserved one."""
    subject = claims["sub"]  # PyJWT has checked that it is there and a string
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_CHARS \
            or _has_control_characters(subject):
        raise _unauthorized(f"the JWT's sub claim must be a non-blank string of at most {MAX_SUBJECT_CHARS} "
                            "characters without control characters", "invalid_claim")
    if is_reserved_subject(subject):
        # The default user is who API keys act as: a token acting as it would pass for an API key.
        raise _unauthorized(f"the JWT's sub {subject!r} is reserved for API keys and the system; the identity "
                            "provider must give users other subjects", "reserved_subject")
    return subject


def _profile_text(value: Any, max_chars: int) -> str | None:
    """An optional profile claim (email, name) that fits its column; anything else is left out."""
    if not isinstance(value, str) or len(value) > max_chars or "\x00" in value:
        return None
    return value


class JWKSCache:
    """The signing keys published at a JWKS URL, fetched asynchronously and cached."""

    def __init__(self, url: str, *, ttl_s: float = 300.0, min_refresh_s: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.min_refresh_s = min_refresh_s
        self._client = httpx.AsyncClient(timeout=5.0, transport=transport)
        self._keys: dict[str | None, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> Any:
        """The public key for ``kid`` (the only key, when the token names none)."""
        now = time.monotonic()
        fresh = now - self._fetched_at < self.ttl_s
        key = self._pick(kid)
        if key is not None and fresh:
            return key
        async with self._lock:
            # Another request may have fetched while this one waited; an unknown kid refetches at
            # most every min_refresh_s, so bad tokens cannot make us hammer the key server.
            key = self._pick(kid)
            age = time.monotonic() - self._fetched_at
            if (key is None and age >= self.min_refresh_s) or age >= self.ttl_s:
                await self._fetch()
                key = self._pick(kid)
        if key is None:
            raise _unauthorized(f"the token's signing key (kid {kid!r}) is not published at {self.url}", "unknown_key")
        return key

    def _pick(self, kid: str | None) -> Any:
        if kid is not None:
            return self._keys.get(kid)
        named = [k for k in self._keys.values() if k is not None]
        return named[0] if len(named) == 1 else None

    async def _fetch(self) -> None:
        import jwt

        try:
            response = await self._client.get(self.url)
            response.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            if self._keys:  # keep serving with the keys we have
                self._fetched_at = time.monotonic()
                return
            raise HTTPProblem(503, f"cannot fetch the JWT signing keys from {self.url} ({type(exc).__name__}: {exc}); "
                                "check AGENTADAPTER_JWKS_URL and that the identity provider is up",
                           type="api_error", code="jwks_unavailable") from exc
        self._keys = {k.key_id: k.key for k in key_set.keys if k.key_type in ("RSA", "EC")}
        self._fetched_at = time.monotonic()

    async def aclose(self) -> None:
        await self._client.aclose()


class JWTVerifier:
    """Checks a JWT's signature (HS256 secret or RS256 JWKS key) and its time, issuer and audience claims."""

    def __init__(self, *, secret: str | None, jwks: JWKSCache | None, issuer: str | None, audience: str | None,
                 leeway_s: float) -> None:
        self.secret = secret
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s

    @property
    def algorithms(self) -> list[str]:
        return [*(["HS256"] if self.secret else []), *(["RS256"] if self.jwks else [])]

    async def verify(self, token: str) -> dict[str, Any]:
        import jwt  # PyJWT (and cryptography) only in servers that accept JWTs

        from agentadapter.server.jwt_claims import InvalidTimeClaim, StrictPyJWT

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"the bearer token is neither an API key (aa_...) nor a JWT: {exc}",
                                "invalid_token") from exc
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256" and self.secret:
            key = self.secret
        elif algorithm == "RS256" and self.jwks is not None:
            key = await self.jwks.key_for(header.get("kid"))
        else:
            accepted = ", ".join(self.algorithms) or "none (no JWT_SECRET or JWKS_URL is configured)"
            raise _unauthorized(f"JWT algorithm {algorithm!r} is not accepted; this server accepts {accepted}",
                                "unsupported_algorithm")
        required = ["exp", "sub", *(["iss"] if self.issuer else []), *(["aud"] if self.audience else [])]
        try:
            claims: dict[str, Any] = StrictPyJWT().decode(
                token, key, algorithms=[algorithm], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway_s, options={"require": required, "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _unauthorized("the JWT has expired (exp); get a new token", "token_expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise _unauthorized("the JWT is not valid yet (nbf/iat in the future); check the clocks",
                                "token_not_yet_valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise _unauthorized(f"the JWT's audience is not {self.audience!r} (aud)", "invalid_audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise _unauthorized(f"the JWT's issuer is not {self.issuer!r} (iss)", "invalid_issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"the JWT lacks the {exc.claim!r} claim", "missing_claim") from exc
        except InvalidTimeClaim as exc:
            raise HTTPProblem(401, str(exc), code="invalid_claim", param=exc.claim,
                           headers={"WWW-Authenticate": _BEARER}) from exc
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"the JWT is not valid: {exc}", "invalid_token") from exc
        return claims


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal` (or a 401)."""

    def __init__(self, db: Database, settings: Settings, server: ServerSettings, *,
                 jwks_transport: httpx.AsyncBaseTransport | None = None, redis: RedisConnections | None = None) -> None:
        self.db = db
        self.cache_s = server.auth_cache_s
        self.default_role = server.jwt_default_role
        jwks = JWKSCache(settings.jwks_url, ttl_s=server.jwks_cache_s, transport=jwks_transport) \
            if settings.jwks_url else None
        self.jwt = JWTVerifier(secret=settings.jwt_secret, jwks=jwks, issuer=settings.jwt_issuer,
                               audience=settings.jwt_audience, leeway_s=server.jwt_leeway_s) \
            if settings.jwt_secret or jwks else None
        self._keys: dict[str, tuple[float, Principal]] = {}
        self.negative_cache_s = server.auth_negative_cache_s
        self._bad_keys = ExpiringSet(server.auth_negative_cache_size)
        """Hashes of API keys just found invalid: refused again without a database lookup."""
        # The process's Redis owner when given (the lifespan's); else connections of the throttle's own.
        self.throttle: AuthThrottle | None = build_auth_throttle(server, redis if redis is not None
                                                                 else settings.redis_url)
        self._users: dict[tuple[Any, ...], tuple[float, uuid.UUID]] = {}
        self._tenants: dict[str, tuple[float, uuid.UUID]] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def authenticate(self, authorization: str | None, *, client: str | None = None) -> Principal:
        """The caller ``authorization`` proves; ``client`` (the peer's address) is what failures are counted by."""
        if not authorization:
            # Not a failed attempt: no credentials were tried (and checking costs nothing).
            raise _unauthorized("this endpoint needs a bearer token: send 'Authorization: Bearer <API key or JWT>' "
                                "(make a key with `agentadapter keys create --tenant NAME`)", "missing_token")
        throttle = self.throttle
        if throttle is None or not client:
            return await self._verify(authorization)
        throttle.refuse_if_throttled(client)  # before any lookup: a throttled address costs no query
        try:
            return await self._verify(authorization)
        except HTTPProblem as exc:
            if exc.status == 401:
                await throttle.failed(client)  # the 429 instead, once the address has used up its failures
            raise

    async def _verify(self, authorization: str) -> Principal:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("the Authorization header must read 'Bearer <API key or JWT>'", "invalid_scheme")
        if token.startswith(api_keys.KEY_PREFIX):
            return await self._from_api_key(token)
        if self.jwt is None:
            raise _unauthorized("the bearer token is not a valid API key (they start with aa_), and this server "
                                "accepts no JWTs (AGENTADAPTER_JWT_SECRET / JWKS_URL are unset)", "invalid_api_key")
        return await self._from_jwt(await self.jwt.verify(token))

    def forget(self) -> None:
        """Drop every cached verification (after revoking a key in this process)."""
        self._keys.clear()
        self._bad_keys.clear()
        self._users.clear()
        self._tenants.clear()

    async def _from_api_key(self, key: str) -> Principal:
        digest = api_keys.hash_key(key)
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        if digest in self._bad_keys:
            raise _invalid_api_key()
        async with self.db.session() as session:
            row = await api_keys.find_api_key(session, key)
            if row is None:
                self._keys.pop(digest, None)
                if self.negative_cache_s > 0:
                    # A key is random: one unknown now is not made later, and revoked or expired stays so.
                    self._bad_keys.add(digest, self.negative_cache_s)
                raise _invalid_api_key()
            user_id = row.user_id or (await users.default_user(session, row.tenant_id)).id
            principal = Principal(tenant_id=row.tenant_id, user_id=user_id, role=row.role, kind="api_key",
                                  subject=f"api_key:{row.prefix}", scopes=_our_scopes(row.scopes), key_id=row.id)
            lifetime = self.cache_s
            if row.expires_at is not None:
                lifetime = min(lifetime, max(0.0, row.expires_at.timestamp() - time.time()))
        if lifetime > 0:
            self._keys[digest] = (now + lifetime, principal)
        self._spawn(self._touch(row.tenant_id, row.id))
        return principal

    async def _touch(self, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
        async with self.db.writer() as session:
            await api_keys.touch_api_key(session, tenant_id, key_id)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _from_jwt(self, claims: Mapping[str, Any]) -> Principal:
        subject = _subject_of(claims)
        tenant_id = await self._tenant_of(claims)
        role = self._role_of(claims)
        email = _profile_text(claims.get("email"), 320)
        name = _profile_text(claims.get("name"), 200)
        key = (tenant_id, subject, role, email, name)
        now = time.monotonic()
        cached = self._users.get(key)
        if cached is not None and cached[0] > now:
            user_id = cached[1]
        else:
            async with self.db.writer() as session:
                user = await users.get_or_create_user(session, tenant_id, subject, role=role, email=email,
                                                       display_name=name)
                user_id = user.id
            self._users[key] = (now + self.cache_s, user_id)
        scopes = _our_scopes(claims.get("scope") or claims.get("scp") or ())
        return Principal(tenant_id=tenant_id, user_id=user_id, role=role, kind="jwt", subject=subject, scopes=scopes)

    async def _tenant_of(self, claims: Mapping[str, Any]) -> uuid.UUID:
        value = claims.get("tenant_id") or claims.get("tenant")
        if not isinstance(value, str) or not value:
            raise _unauthorized("the JWT names no tenant: add a tenant_id (tenant id) or tenant (tenant name) claim",
                                "missing_tenant")
        if len(value) > MAX_TENANT_CLAIM_CHARS or _has_control_characters(value):
            raise _unauthorized(f"the JWT's tenant claim is not a tenant id or name (at most {MAX_TENANT_CLAIM_CHARS} "
                                "characters, no control characters)", "invalid_claim")
        now = time.monotonic()
        cached = self._tenants.get(value)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.db.session() as session:
            found: Tenant | None
            try:
                found = await tenants.get_tenant(session, uuid.UUID(value))
            except (ValueError, RecordNotFound):  # not an id (or no such id): try it as a name
                found = await tenants.get_tenant_by_name(session, value)
        if found is None:
            raise _unauthorized(f"the JWT's tenant {value!r} does not exist; create it with "
                                "`agentadapter tenants create NAME`", "unknown_tenant")
        self._tenants[value] = (now + self.cache_s, found.id)
        return found.id

    def _role_of(self, claims: Mapping[str, Any]) -> str:
        role = claims.get("role")
        candidates = [role] if isinstance(role, str) else []
        roles = claims.get("roles")
        if isinstance(roles, list):
            candidates += [r for r in roles if isinstance(r, str)]
        known = [r for r in candidates if r in ROLE_RANK]
        return max(known, key=ROLE_RANK.__getitem__) if known else self.default_role

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.jwt is not None and self.jwt.jwks is not None:
            await self.jwt.jwks.aclose()
        if self.throttle is not None:
            await self.throttle.aclose()
