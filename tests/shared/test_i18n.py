"""Language negotiation (RFC 9110 §12.5.4), library texts replaced by the catalogue's, enum labels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength

from shared.i18n import STDNUM_REASONS, VALIDATION_MESSAGES, negotiate, stdnum_reason, validation_message
from shared.labels import LABELS, enum_fields
from shared.schemas import FiscalCode, VatNumber
from tests.conftest import app_for

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ("it", True)),  # no header: any language will do, Italian is the default
        ("", ("it", True)),
        ("en", ("en", True)),
        ("en-GB", ("en", True)),  # a region subtag counts for its language
        ("it-IT,it;q=0.9,en;q=0.8", ("it", True)),
        ("en-US,en;q=0.9,it;q=0.8", ("en", True)),
        ("it;q=0.4, en;q=0.5", ("en", True)),  # weights, not order
        ("en;q=0.5, it;q=0.5", ("en", True)),  # a tie goes to the range sent first
        ("fr, en;q=0.5", ("en", True)),  # French is not supported: the next choice is
        ("fr", ("it", False)),  # nothing acceptable is supported: Italian, and not acceptable
        ("de-CH, fr;q=0.8", ("it", False)),
        ("*", ("it", True)),  # any language: the default
        ("it;q=0, *", ("en", True)),  # q=0 excludes Italian, `*` admits English
        ("en;q=0, *;q=0.1", ("it", True)),
        ("de, *;q=0.1", ("it", True)),
        ("*;q=0", ("it", False)),
        ("it;q=0, en;q=0", ("it", False)),
        ("it;q=0, it-IT;q=0.9, en;q=0.1", ("en", True)),  # the exact range's q=0 wins over its subtag
        ("en;q=banana", ("it", False)),  # a malformed weight makes its range unacceptable
        ("en;q=2", ("it", False)),  # so does one outside 0-1
        ("EN", ("en", True)),  # case-insensitive
    ],
)
def test_negotiation(header: str | None, expected: tuple[str, bool]) -> None:
    assert negotiate(header) == expected


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InvalidChecksum(), "invalid_checksum"),
        (InvalidLength(), "invalid_length"),  # a subclass of InvalidFormat
        (InvalidComponent(), "invalid_component"),
        (InvalidFormat(), "invalid_format"),
    ],
)
def test_stdnum_exceptions_map_to_reason_codes(exc: Exception, code: str) -> None:
    assert stdnum_reason(exc) == code
    assert code in STDNUM_REASONS


LIBRARY_WORDS = re.compile(r"\b(the|number|checksum|check digit|invalid|length|format|parts|unknown)\b", re.I)
ITALIAN_WORDS = re.compile(r"\b(partita|non|valida|cifra|controllo|numero|caratteri|formato|codice)\b", re.I)


@pytest.mark.parametrize(
    ("value", "adapter"),
    [
        ("01234567898", VatNumber),  # wrong check digit
        ("0123456789", VatNumber),  # too short
        ("0123456789A", VatNumber),  # not digits
        ("01234567890", VatNumber),  # office code 789 does not exist
        (12345678901, VatNumber),  # not a string
        ("RSSMRA85T10A562X", FiscalCode),  # wrong check character
    ],
)
def test_stdnum_messages_are_wholly_in_one_language(value: object, adapter: object) -> None:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(adapter).validate_python(value)
    err = info.value.errors()[0]
    it = validation_message(err["type"], err.get("ctx"), err["msg"], "it")
    en = validation_message(err["type"], err.get("ctx"), err["msg"], "en")
    assert not LIBRARY_WORDS.search(it), it
    assert not ITALIAN_WORDS.search(en), en
    assert it.startswith(("Partita IVA non valida: ", "Codice fiscale non valido: ")), it
    assert en.startswith(("Invalid VAT number: ", "Invalid fiscal code: ")), en


def test_choices_are_listed_in_the_language() -> None:
    from typing import Literal

    with pytest.raises(ValidationError) as info:
        TypeAdapter(Literal["advance", "balance", "recovery"]).validate_python("gift")
    err = info.value.errors()[0]
    it = validation_message(err["type"], err.get("ctx"), err["msg"], "it")
    en = validation_message(err["type"], err.get("ctx"), err["msg"], "en")
    assert it == "Valore non ammesso: 'advance', 'balance' o 'recovery'."
    assert en == "Value not allowed: 'advance', 'balance' or 'recovery'."


def test_unknown_code_is_not_wrapped_english_in_italian() -> None:
    assert validation_message("some_new_code", None, "Something library-ish went wrong", "it") == "Valore non valido."
    assert validation_message("value_error", {"error": ValueError("English text")}, "", "it") == "Valore non valido."


def test_every_custom_error_code_has_both_texts() -> None:
    """A PydanticCustomError raised anywhere in the code has its Italian and English text in the catalogue."""
    raised = set()
    for path in [*REPO.joinpath("shared").rglob("*.py"), *REPO.joinpath("services").rglob("*.py")]:
        raised |= set(re.findall(r'PydanticCustomError\(\s*"([a-z_]+)"', path.read_text()))
        raised |= set(re.findall(r'return "([a-z_]+)", f?"', path.read_text()) if "iban" in path.name else [])
    assert raised, "the scan found nothing: the pattern is stale"
    missing = sorted(raised - VALIDATION_MESSAGES.keys())
    assert not missing, missing
    for code in raised:
        it, en = VALIDATION_MESSAGES[code]
        assert it and en and it != en, code


@pytest.mark.parametrize("service", ["intake", "evaluation", "monitoring"])
def test_every_enum_value_has_both_labels(service: str) -> None:
    """Derived from the service's OpenAPI (its schemas' Literal types): a new value without labels fails here."""
    fields = enum_fields(app_for(service).openapi())
    assert fields, "no enum found: the walker is stale"
    missing = sorted({f"{field}={v}" for field, values in fields.items() for v in values if v not in LABELS})
    assert not missing, missing
    for values in fields.values():
        for v in values:
            it, en = LABELS[v]
            assert it.strip() and en.strip(), v


def test_labels_cover_the_statuses_people_ask_for() -> None:
    monitoring = enum_fields(app_for("monitoring").openapi())
    evaluation = enum_fields(app_for("evaluation").openapi())
    assert set(monitoring["ClaimOut.status"]) == {"draft", "submitted", "approved", "partially_approved", "rejected"}
    assert set(monitoring["PaymentOut.kind"]) == {"advance", "balance", "recovery"}
    assert set(monitoring["PaymentOut.status"]) == {"ordered", "paid", "failed", "cancelled"}
    assert set(monitoring["ProjectOut.status"]) == {"active", "completed", "revoked"}
    assert "funded" in evaluation["DecisionOut.outcome"]


@pytest.mark.parametrize(
    ("header", "lang", "title"), [("en-GB", "en", b"Request not received in time"), ("fr", "it", None)]
)
def test_problems_the_server_writes_itself_say_their_language(header: str, lang: str, title: bytes | None) -> None:
    """Cut connections (slow headers, over capacity) are answered below the application: same headers."""
    from uvicorn.server import ServerState

    from shared.server import _problem_bytes

    raw = _problem_bytes("request-timeout", header, ServerState())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert f"content-language: {lang}".encode() in head.lower()
    assert b"vary: accept-language" in head.lower()
    assert (title or b"Richiesta non ricevuta in tempo") in body
