"""Personal data: detectors (email, phone, card, IBAN, IP), and a policy that keeps, masks or hashes what they find.

A low layer beside ``observability``: it imports nothing of AgentAdapter, so the store (masking what
it persists), the agents (masking what goes to an external provider) and the service (tenant
policies, erasure, consent, reports) all use it. See ``docs/compliance.md``.
"""

from __future__ import annotations

from agentadapter.compliance.anonymize import MODES, Anonymizer, PiiMode, PiiPolicy, Pseudonymizer
from agentadapter.compliance.detectors import (
    BUILTIN_KINDS,
    Detector,
    Finding,
    detector_kinds,
    find_all,
    iban_valid,
    luhn_valid,
    register_detector,
)

__all__ = [
    "BUILTIN_KINDS",
    "MODES",
    "Anonymizer",
    "Detector",
    "Finding",
    "PiiMode",
    "PiiPolicy",
    "Pseudonymizer",
    "detector_kinds",
    "find_all",
    "iban_valid",
    "luhn_valid",
    "register_detector",
]
