"""Personal-data detectors: pure functions from a text to the spans of personal data in it.

Each detector is a :class:`Detector` (a ``kind`` and ``find(text) -> [Finding]``); the built-in ones
are registered under their kind and more can be added with :func:`register_detector`, or by a
package through the ``agentadapter.detectors`` entry point (a detector, or a class made without
arguments; loaded on first use, in every process: the server's and the workers'). A tenant's policy
names the kinds it wants, so a registered detector is usable by name. The built-ins:

- ``email``: addresses of the usual ``local@domain.tld`` shape;
- ``phone``: numbers found by Google's libphonenumber (``phonenumbers``, offline metadata, the
  ``compliance`` extra), in international form (``+44 20 7946 0958``) or in the policy's default
  region; without the library, international numbers of 8 to 15 digits after a ``+``;
- ``card``: payment card numbers (13 to 19 digits, spaces or dashes between groups) that pass the
  Luhn checksum, so an order number of the same length is left alone;
- ``iban``: IBANs whose length matches their country and whose mod-97 check is 1;
- ``ip``: IPv4 and IPv6 addresses that :mod:`ipaddress` parses.

Names are not detected: no name recogniser works offline without a model downloaded at run time,
and a list-based guess masks ordinary words. A project with such a model can register one here.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

__all__ = [
    "BUILTIN_KINDS",
    "Detector",
    "Finding",
    "detector",
    "detector_kinds",
    "find_all",
    "luhn_valid",
    "iban_valid",
    "register_detector",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of personal data: its kind and where it is in the text (``text[start:end]``)."""

    kind: str
    start: int
    end: int
    text: str


class Detector(Protocol):
    """Finds one kind of personal data in a text."""

    @property
    def kind(self) -> str: ...

    def find(self, text: str) -> Iterable[Finding]: ...


@dataclass(frozen=True, slots=True)
class PatternDetector:
    """A detector made of a regular expression and a check of each match (a checksum, a parse)."""

    kind: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None

    def find(self, text: str) -> list[Finding]:
        return [
            Finding(self.kind, m.start(), m.end(), m.group())
            for m in self.pattern.finditer(text)
            if self.check is None or self.check(m.group())
        ]


# ------------------------------------------------------------------------------------------ checksums


def luhn_valid(number: str) -> bool:
    """The Luhn checksum of the digits in ``number`` (separators ignored); 13 to 19 digits only."""
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:  # 0000 0000 0000 0000 passes Luhn, is no card
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


# The IBAN length of each country that issues them (the registry's table; unknown countries are refused).
_IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
}


def iban_valid(value: str) -> bool:
    """An IBAN's country length and its ISO 7064 mod-97 check (spaces ignored)."""
    iban = value.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ip_valid(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------ detectors

_EMAIL = re.compile(
    r"(?<![\w.+\-])[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w\-])"
)
_CARD = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")
_PHONE_FALLBACK = re.compile(r"(?<![\w+])\+\d(?:[ \-.()]{0,2}\d){7,14}(?!\d)")


@dataclass(frozen=True, slots=True)
class IpDetector:
    """IPv4 and IPv6 addresses (each candidate parsed by :mod:`ipaddress`)."""

    kind: str = "ip"

    def find(self, text: str) -> list[Finding]:
        found = [
            Finding(self.kind, m.start(), m.end(), m.group()) for m in _IPV4.finditer(text) if _ip_valid(m.group())
        ]
        # "::" alone, or a time like 12:30:45, is no address: an IPv6 candidate must parse and hold a hex group.
        found += [
            Finding(self.kind, m.start(), m.end(), m.group())
            for m in _IPV6.finditer(text)
            if m.group() != "::"
            and _ip_valid(m.group())
            and re.search(r"[0-9A-Fa-f]{2}", m.group())
            and not re.fullmatch(r"\d{1,2}(?::\d{2}){1,2}", m.group())
        ]
        return found


@dataclass(frozen=True, slots=True)
class PhoneDetector:
    """Phone numbers, by libphonenumber when it is installed (``region`` reads national numbers)."""

    region: str | None = None
    kind: str = "phone"

    def find(self, text: str) -> list[Finding]:
        matcher = _phone_matcher()
        if matcher is None:
            return [Finding(self.kind, m.start(), m.end(), m.group()) for m in _PHONE_FALLBACK.finditer(text)]
        return [Finding(self.kind, m.start, m.end, m.raw_string) for m in matcher(text, self.region)]


@cache
def _phone_matcher() -> Callable[[str, str | None], Iterable[Any]] | None:
    try:
        import phonenumbers
    except ImportError:  # the compliance extra is not installed: international numbers only
        return None

    def match(text: str, region: str | None) -> Iterable[Any]:
        # VALID: the number must exist in the numbering plan, not just look like one.
        return phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)

    return match


BUILTIN_KINDS = ("email", "phone", "card", "iban", "ip")

_registry: dict[str, Detector] = {
    "email": PatternDetector("email", _EMAIL),
    "phone": PhoneDetector(),
    "card": PatternDetector("card", _CARD, luhn_valid),
    "iban": PatternDetector("iban", _IBAN, iban_valid),
    "ip": IpDetector(),
}
_lock = threading.Lock()
_plugins_loaded = False
ENTRY_POINT_GROUP = "agentadapter.detectors"
logger = logging.getLogger("agentadapter.compliance")


def _load_plugins() -> None:
    """Register the detectors packages declare under the ``agentadapter.detectors`` entry point, once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found = point.load()
            register_detector(found() if isinstance(found, type) else found)
        except Exception as exc:  # one broken plugin must not take detection down
            logger.warning(
                "the detector %r of entry point %s could not be registered: %s", point.name, ENTRY_POINT_GROUP, exc
            )


def register_detector(found: Detector, *, replace: bool = False) -> None:
    """Make ``found`` usable under its ``kind`` (a policy names detectors by kind)."""
    kind = found.kind
    if not kind or not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", kind):
        raise ValueError(f"a detector's kind is a lower-case name (letters, digits, _), not {kind!r}")
    with _lock:
        if kind in _registry and not replace:
            raise ValueError(f"a detector of kind {kind!r} is registered already; pass replace=True to replace it")
        _registry[kind] = found


def detector_kinds() -> list[str]:
    """The kinds of every registered detector, sorted."""
    _load_plugins()
    return sorted(_registry)


def detector(kind: str) -> Detector:
    _load_plugins()
    try:
        return _registry[kind]
    except KeyError:
        raise KeyError(
            f"no detector of kind {kind!r}; the registered kinds are {', '.join(detector_kinds())}"
        ) from None


def find_all(text: str, kinds: Sequence[str] | None = None, *, region: str | None = None) -> list[Finding]:
    """Every finding of the ``kinds`` (all registered ones when None) in ``text``, in order, overlaps removed.

    Where two findings overlap the earlier (then the longer) one is kept: a card number is not also a phone.
    """
    if not text:
        return []
    found: list[Finding] = []
    for kind in kinds if kinds is not None else detector_kinds():
        if kind == "phone" and region:
            found.extend(PhoneDetector(region).find(text))
        else:
            found.extend(detector(kind).find(text))
    found.sort(key=lambda f: (f.start, -(f.end - f.start), _PRIORITY.get(f.kind, 99)))
    kept: list[Finding] = []
    for finding in found:
        if not kept or finding.start >= kept[-1].end:
            kept.append(finding)
    return kept


# Among findings of one span: the checksummed kinds win over the looser ones.
_PRIORITY = {"card": 0, "iban": 1, "email": 2, "ip": 3, "phone": 4}
