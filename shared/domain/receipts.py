"""Submission receipts: canonical JSON and the hash chain that lets anyone verify the protocol order.

Each receipt is hashed together with the hash of the previous receipt of the same call
(``chain_link``); the first one is chained to ``GENESIS``. Changing, removing or reordering a
receipt breaks every later link, which ``verify_chain`` finds.

Canonical form: UTF-8 JSON with sorted keys, no whitespace, non-ASCII characters kept as is;
``Decimal`` as its string (``"12500.00"``), ``date`` as ``YYYY-MM-DD``, aware ``datetime`` in UTC as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fractional digits, so the
database can produce the same text), ``UUID`` as its string, tuples as arrays. Floats, naive datetimes
and non-string keys are refused, so a receipt hashes the same on every machine.
"""

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

GENESIS = "0" * 64

_JsonValue = None | bool | int | str | list[Any] | dict[str, Any]


def _normalise(obj: object) -> _JsonValue:
    # The exact built-in types first, by one type lookup (a submit normalises a whole draft); anything else,
    # subclasses included, takes the general checks below with the same outcome.
    kind = type(obj)
    if kind is str or kind is int or kind is bool or obj is None:
        return obj  # type: ignore[return-value]
    if kind is dict:
        out: dict[str, Any] = {}
        for key, value in obj.items():  # type: ignore[attr-defined]
            if type(key) is not str and not isinstance(key, str):
                raise TypeError(f"canonical JSON keys must be strings, got {key!r}")
            out[key] = _normalise(value)
        return out
    if kind is list or kind is tuple:
        return [_normalise(v) for v in obj]  # type: ignore[attr-defined]
    if kind is Decimal:
        if not obj.is_finite():  # type: ignore[attr-defined]
            raise ValueError(f"non-finite Decimal {obj}")
        return str(obj)
    return _normalise_other(obj)


def _normalise_other(obj: object) -> _JsonValue:
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        raise TypeError("floats are not allowed in canonical JSON: use Decimal")
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"non-finite Decimal {obj}")
        return str(obj)
    if isinstance(obj, datetime):
        if obj.tzinfo is None or obj.utcoffset() is None:
            raise ValueError("naive datetimes are not allowed in canonical JSON")
        return obj.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, UUID):
        return str(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON keys must be strings, got {key!r}")
            out[key] = _normalise(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [_normalise(v) for v in obj]
    raise TypeError(f"cannot put {type(obj).__name__} in canonical JSON")


def canonical_json(obj: object) -> bytes:
    """The canonical UTF-8 JSON bytes of ``obj`` (see the module docstring).

    orjson with sorted keys writes exactly what ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` writes for these values, several times faster (the submit hashes every document).
    """
    return orjson.dumps(_normalise(obj), option=orjson.OPT_SORT_KEYS)


def sha256_hex(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def chain_link(previous_hash: str, receipt: Mapping[str, Any]) -> str:
    """The hash of ``receipt`` chained to ``previous_hash`` (``GENESIS`` for the first receipt)."""
    return sha256_hex(previous_hash.encode("ascii") + canonical_json(receipt))


def verify_chain(entries: Iterable[tuple[Mapping[str, Any], str]]) -> int | None:
    """Check ``(receipt, stored hash)`` pairs in chain order, from ``GENESIS``.

    Returns the index of the first entry whose stored hash is not the expected link, or ``None`` if
    the whole chain holds.
    """
    previous = GENESIS
    for index, (receipt, stored) in enumerate(entries):
        if chain_link(previous, receipt) != stored:
            return index
        previous = stored
    return None
