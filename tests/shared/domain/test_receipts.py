from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from shared.domain.receipts import GENESIS, canonical_json, chain_link, sha256_hex, verify_chain


def test_canonical_json() -> None:
    rome = timezone(timedelta(hours=2))
    obj = {
        "b": Decimal("12500.00"),
        "a": [1, True, None, "città"],
        "at": datetime(2025, 6, 3, 10, 0, 0, tzinfo=rome),
        "day": date(2025, 6, 3),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "t": (1, 2),
    }
    assert (
        canonical_json(obj)
        == (
            '{"a":[1,true,null,"città"],"at":"2025-06-03T08:00:00.000000Z","b":"12500.00","day":"2025-06-03",'
            '"id":"12345678-1234-5678-1234-567812345678","t":[1,2]}'
        ).encode()
    )


@pytest.mark.parametrize("bad", [{"x": 1.5}, {"x": datetime(2025, 1, 1)}, {1: "a"}, {"x": object()}])
def test_canonical_json_refuses(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_json(bad)


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert GENESIS == "0" * 64


def _chain(n: int) -> list[tuple[dict[str, Any], str]]:
    entries: list[tuple[dict[str, Any], str]] = []
    previous = GENESIS
    for i in range(1, n + 1):
        receipt = {"protocol_number": i, "received_at": datetime(2025, 6, 3, 8, 0, i, tzinfo=UTC)}
        previous = chain_link(previous, receipt)
        entries.append((receipt, previous))
    return entries


def test_chain_link_definition() -> None:
    receipt = {"n": 1}
    assert chain_link(GENESIS, receipt) == sha256_hex(GENESIS.encode() + b'{"n":1}')


def test_verify_chain() -> None:
    entries = _chain(5)
    assert verify_chain(entries) is None
    assert verify_chain([]) is None
    tampered = list(entries)
    tampered[2] = ({**entries[2][0], "protocol_number": 99}, entries[2][1])
    assert verify_chain(tampered) == 2
    swapped = [entries[0], entries[2], entries[1], entries[3]]
    assert verify_chain(swapped) == 1
    assert verify_chain(entries[1:]) == 0


def test_canonical_json_is_the_stdlib_canonical_form_byte_for_byte():
    """orjson writes it; the definition (sorted keys, no spaces, UTF-8 kept) is the stdlib's."""
    import json

    from shared.domain.receipts import _normalise

    tricky = {"z": [1, True, None, 'città\u2028\n\t"\\/'], "b": {"y": "\x01\x1f", "é": "😀"}, "a": "ü"}
    expected = json.dumps(_normalise(tricky), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_json(tricky) == expected
