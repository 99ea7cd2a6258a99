"""PyJWT with strict time claims: ``exp``, ``nbf`` and ``iat`` must be JSON numbers a datetime can hold.

PyJWT reads the time claims with ``int()``, so ``"exp": "99999999999"`` (a string) passes its check,
``"nbf": true`` counts as 1, and ``"exp": 1e300`` is a token that never expires; Python's ``json``
also reads the non-JSON ``NaN`` and ``Infinity``. :class:`StrictPyJWT` checks the payload once the
signature has been verified, and raises :class:`InvalidTimeClaim` for a time claim that is not a
finite integer or float between 0 and the last second of year 9999 (the other claims are
type-checked where they are read). PyJWT then checks the times as usual. Imported only by servers
that accept JWTs (``auth.py``).
"""

from __future__ import annotations

import math
from typing import Any

import jwt

__all__ = ["MAX_TIMESTAMP", "TIME_CLAIMS", "InvalidTimeClaim", "StrictPyJWT"]

TIME_CLAIMS = ("exp", "nbf", "iat")
MAX_TIMESTAMP = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second a ``datetime`` can hold."""


class InvalidTimeClaim(jwt.InvalidTokenError):
    """A time claim (``exp``, ``nbf``, ``iat``) that is not a NumericDate."""

    def __init__(self, claim: str, value: Any) -> None:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        super().__init__(f"the JWT's {claim!r} claim must be a number of seconds since 1970 (a JSON number from 0 "
                         f"to {MAX_TIMESTAMP}), not {shown}")
        self.claim = claim


def check_time_claims(payload: dict[str, Any]) -> None:
    """Raise :class:`InvalidTimeClaim` for the first time claim that is not a NumericDate."""
    for claim in TIME_CLAIMS:
        if claim not in payload:
            continue
        value = payload[claim]
        # bool is an int to Python, not a number to JSON.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidTimeClaim(claim, value)
        if not (math.isfinite(value) and 0 <= value <= MAX_TIMESTAMP):
            raise InvalidTimeClaim(claim, value)


class StrictPyJWT(jwt.PyJWT):
    """``jwt.PyJWT`` whose payloads have well-typed time claims."""

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:
        # PyJWT's documented hook for subclasses, called once the signature has been verified. (A
        # 5000-digit number is a ValueError of json.loads, which PyJWT turns into a DecodeError.)
        payload = super()._decode_payload(decoded)
        check_time_claims(payload)
        return payload
