"""The detectors find what they should, leave look-alikes alone, and the policy keeps, masks or hashes."""

from __future__ import annotations

import pytest

from agentadapter.compliance import (
    Anonymizer,
    PiiPolicy,
    Pseudonymizer,
    find_all,
    iban_valid,
    luhn_valid,
    register_detector,
)
from agentadapter.compliance.detectors import PatternDetector

# Each kind: values it must find, and look-alikes it must not.
CASES = {
    "email": (["jane.doe@example.com", "a+b_c@mail.example.co.uk"], ["jane@localhost", "not an @ address"]),
    "phone": (["+44 20 7946 0958", "+1 415-555-2671", "+49 30 901820"], ["+1 555", "order 4411"]),
    "card": (
        ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"],
        ["4111 1111 1111 1112", "1234567890123", "0000 0000 0000 0000"],
    ),
    "iban": (
        ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"],
        ["GB82 WEST 1234 5698 7654 33", "XX82WEST12345698765432"],
    ),
    "ip": (["192.168.1.20", "2001:db8::8a2e:370:7334", "10.0.0.1"], ["999.1.1.1", "12:30:45", "1.2.3"]),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_detector_finds_its_kind_and_not_its_look_alikes(kind: str) -> None:
    found, not_found = CASES[kind]
    for value in found:
        findings = find_all(f"before {value} after", [kind])
        assert [f.text for f in findings] == [value], (kind, value, findings)
        assert findings[0].kind == kind
    for value in not_found:
        assert find_all(f"before {value} after", [kind]) == [], (kind, value)


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765431")
    assert not iban_valid("GB82WEST1234569876543")  # a character short for a British IBAN


def test_national_phone_numbers_are_read_in_the_policy_region() -> None:
    assert find_all("call 020 7946 0958 today", ["phone"]) == []
    anonymizer = Anonymizer(PiiPolicy("mask", ("phone",), region="GB"))
    assert anonymizer.text("call 020 7946 0958 today") == "call [PHONE] today"


TEXT = (
    "Jane (jane.doe@example.com, +44 20 7946 0958) paid with 4111 1111 1111 1111 from GB82 WEST 1234 5698 "
    "7654 32 at 192.168.1.20"
)


def test_mask_replaces_every_kind_and_keep_changes_nothing() -> None:
    masked = Anonymizer(PiiPolicy("mask")).text(TEXT)
    assert masked == "Jane ([EMAIL], [PHONE]) paid with [CARD] from [IBAN] at [IP]"
    assert Anonymizer(PiiPolicy("keep")).text(TEXT) == TEXT


def test_hash_is_stable_per_key_and_differs_between_keys() -> None:
    one = Anonymizer(PiiPolicy("hash", ("email",)), b"tenant-one")
    again = Anonymizer(PiiPolicy("hash", ("email",)), b"tenant-one")
    other = Anonymizer(PiiPolicy("hash", ("email",)), b"tenant-two")
    token = one.text("jane.doe@example.com")
    assert token.startswith("[EMAIL:") and "jane" not in token
    assert again.text("write to jane.doe@example.com") == f"write to {token}"
    assert other.text("jane.doe@example.com") != token


def test_values_are_walked_keys_included() -> None:
    anonymizer = Anonymizer(PiiPolicy("mask", ("email",)))
    value = {"to": ["a@example.com", 3, None], "a@example.com": {"note": "from b@example.org"}}
    assert anonymizer.value(value) == {"to": ["[EMAIL]", 3, None], "[EMAIL]": {"note": "from [EMAIL]"}}
    assert anonymizer.findings == 3


def test_the_pseudonymizer_restores_what_it_replaced() -> None:
    pseudonyms = Pseudonymizer()
    masked = pseudonyms.mask(TEXT + " and again jane.doe@example.com")
    assert "jane.doe" not in masked and masked.count("<EMAIL_1>") == 2
    assert pseudonyms.restore(masked) == TEXT + " and again jane.doe@example.com"
    assert pseudonyms.restore("unknown <EMAIL_9> stays") == "unknown <EMAIL_9> stays"


def test_a_registered_detector_is_usable_by_kind() -> None:
    import re

    from agentadapter.compliance import detectors

    kind = "employee_id"
    register_detector(PatternDetector(kind, re.compile(r"EMP-\d{6}")), replace=True)
    try:
        assert Anonymizer(PiiPolicy("mask", (kind,))).text("badge EMP-123456") == "badge [EMPLOYEE_ID]"
        with pytest.raises(ValueError, match="registered already"):
            register_detector(PatternDetector(kind, re.compile("x")))
        with pytest.raises(ValueError, match="lower-case"):
            register_detector(PatternDetector("Bad Kind", re.compile("x")))
    finally:
        detectors._registry.pop(kind, None)  # the process's other tests see the built-ins only


def test_a_package_registers_detectors_through_an_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata
    import re

    from agentadapter.compliance import detectors

    class Badge:
        """A detector class, made without arguments."""

        kind = "badge_number"

        def find(self, text: str) -> list[detectors.Finding]:
            return PatternDetector(self.kind, re.compile(r"B-\d{5}")).find(text)

    class Point:
        def __init__(self, name: str, target: object) -> None:
            self.name, self.target = name, target

        def load(self) -> object:
            if isinstance(self.target, Exception):
                raise self.target
            return self.target

    points = [Point("badge", Badge), Point("broken", ImportError("no such module"))]
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: points if group == detectors.ENTRY_POINT_GROUP else []
    )
    monkeypatch.setattr(detectors, "_plugins_loaded", False)
    try:
        assert "badge_number" in detectors.detector_kinds()  # the broken one is skipped (and logged)
        assert Anonymizer(PiiPolicy("mask", ("badge_number",))).text("badge B-12345") == "badge [BADGE_NUMBER]"
    finally:
        detectors._registry.pop("badge_number", None)
