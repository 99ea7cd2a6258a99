"""What a tenant's policy does with the personal data the detectors find: keep, mask or hash it.

:class:`PiiPolicy` is the policy (a mode, the detector kinds, a phone region); :class:`Anonymizer`
applies it to a text or to a JSON-like value (mappings, lists, strings; other values pass as
they are). ``mask`` replaces a finding with ``[EMAIL]``, ``[PHONE]``, ...; ``hash`` with
``[EMAIL:3f9a0c1e2b7d]``, a keyed hash (HMAC-SHA256 under the tenant's own key), so the same address
is the same token across a tenant's records, can be counted and joined, and cannot be reversed by
hashing a list of guesses without the key. ``keep`` stores what it is given.

:class:`Pseudonymizer` is the reversible kind, for text sent outside (a provider the tenant marks
external): each finding becomes a numbered placeholder (``<EMAIL_1>``), the answer's placeholders
are put back (:meth:`Pseudonymizer.restore`), and the mapping never leaves the process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentadapter.compliance.detectors import BUILTIN_KINDS, Finding, find_all

__all__ = ["MODES", "Anonymizer", "PiiMode", "PiiPolicy", "Pseudonymizer"]

PiiMode = Literal["keep", "mask", "hash"]
MODES: tuple[PiiMode, ...] = ("keep", "mask", "hash")


@dataclass(frozen=True, slots=True)
class PiiPolicy:
    """What to do with personal data: ``mode``, for the ``detectors`` kinds (phone numbers read in ``region``)."""

    mode: PiiMode = "keep"
    detectors: tuple[str, ...] = BUILTIN_KINDS
    region: str | None = None
    """An ISO 3166 country code: national phone numbers (without +) are read as this country's."""

    @property
    def active(self) -> bool:
        return self.mode != "keep" and bool(self.detectors)


@dataclass(slots=True)
class Anonymizer:
    """Applies a :class:`PiiPolicy` (``hash_key``: the tenant's key for ``hash``)."""

    policy: PiiPolicy
    hash_key: bytes = b""
    findings: int = 0
    """How many pieces of personal data were replaced so far (what reports count)."""

    def _token(self, finding: Finding) -> str:
        label = finding.kind.upper()
        if self.policy.mode == "hash":
            normal = re.sub(r"[\s\-.()]", "", finding.text).lower()
            digest = hmac.new(self.hash_key, f"{finding.kind}:{normal}".encode(), hashlib.sha256).hexdigest()
            return f"[{label}:{digest[:12]}]"
        return f"[{label}]"

    def text(self, text: str) -> str:
        """``text`` with every finding replaced (unchanged under ``keep``)."""
        if not self.policy.active or not text:
            return text
        found = find_all(text, self.policy.detectors, region=self.policy.region)
        if not found:
            return text
        self.findings += len(found)
        return _replaced(text, found, self._token)

    def value(self, value: Any) -> Any:
        """A JSON-like ``value`` with every string (keys too) passed through :meth:`text`."""
        if not self.policy.active:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


@dataclass(slots=True)
class Pseudonymizer:
    """Reversible placeholders for the text of one conversation: ``mask`` before sending, ``restore`` after."""

    detectors: Sequence[str] = BUILTIN_KINDS
    region: str | None = None
    _by_value: dict[str, str] = field(default_factory=dict)
    _by_token: dict[str, str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def mask(self, text: str) -> str:
        if not text:
            return text
        return _replaced(text, find_all(text, self.detectors, region=self.region), self._placeholder)

    def _placeholder(self, finding: Finding) -> str:
        token = self._by_value.get(finding.text)
        if token is None:
            label = finding.kind.upper()
            self._counts[label] = self._counts.get(label, 0) + 1
            token = f"<{label}_{self._counts[label]}>"
            self._by_value[finding.text] = token
            self._by_token[token] = finding.text
        return token

    def restore(self, text: str) -> str:
        """``text`` with every placeholder this pseudonymizer made put back."""
        if not self._by_token or not text:
            return text
        return re.sub(r"<[A-Z][A-Z0-9_]*_\d+>", lambda m: self._by_token.get(m.group(), m.group()), text)

    def restore_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.restore(value)
        if isinstance(value, Mapping):
            return {k: self.restore_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.restore_value(v) for v in value]
        return value

    @property
    def replaced(self) -> int:
        """How many distinct values were replaced."""
        return len(self._by_value)


def _replaced(text: str, found: Sequence[Finding], replacement: Callable[[Finding], str]) -> str:
    """``text`` with each finding (in order, not overlapping) replaced by what ``replacement`` makes of it."""
    pieces: list[str] = []
    position = 0
    for finding in found:
        pieces.append(text[position : finding.start])
        pieces.append(replacement(finding))
        position = finding.end
    pieces.append(text[position:])
    return "".join(pieces)
