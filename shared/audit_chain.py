"""Verify the audit trail's hash chain: the offline verifier and the one behind `GET /v1/audit/verify`.

Standard library only, so an auditor can run this file alone on an export:
`python3 audit_chain.py EXPORT.jsonl [--anchor HASH]` (or `desk audit-verify`). The README's
"Audit trail" describes the procedure.

The records are written by PostgreSQL: the trigger `desk.audit_link` (migration 0013) sets each record's
`seq`, `prev_hash` and `hash` = SHA-256 of `desk.audit_canonical(record)`. That SQL function is the one
definition of the canonical form; `canonical` below reproduces it byte for byte:

    ["desk-audit/1",seq,id,service,at,request_id,principal_kind,principal_client_id,action,
     resource_type,resource_id,before,after,prev_hash]

a JSON array without spaces between its elements; `at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC); strings
escaped as PostgreSQL escapes JSON strings (`"`, `\\`, `\\b \\f \\n \\r \\t`, other characters below
U+0020 as `\\u00xx`, everything else as is, UTF-8); `before` and `after` in PostgreSQL's jsonb text form
(object keys ordered by byte length, then bytes; `", "` between items and `": "` after keys; numbers as
written); a missing value is `null`. The first record of a chain has `prev_hash` = 64 zeros.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FORMAT = "desk-audit/1"
EXPORT_FORMAT = "desk-audit-export/1"
GENESIS = "0" * 64


class RawNumber(str):
    """A JSON number kept as written: the hash covers PostgreSQL's text of it, not a float's."""


def parse_record(line: str) -> dict[str, Any]:
    """One line of an export (a JSON object), numbers kept as their text."""
    value = json.loads(line, parse_int=RawNumber, parse_float=RawNumber)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def json_string(s: str) -> str:
    """A JSON string as PostgreSQL writes it (`escape_json`)."""
    out = ['"']
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jsonb_text(value: Any) -> str:
    """A JSON value as PostgreSQL's jsonb prints it."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, RawNumber):
        return str.__str__(value)
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{json_string(k)}: {jsonb_text(value[k])}" for k in keys) + "}"
    raise TypeError(f"not a JSON value from an export: {type(value).__name__}")


def _opt_string(value: Any) -> str:
    return "null" if value is None else json_string(str(value))


def canonical(record: dict[str, Any]) -> str:
    """The text that `record["hash"]` is the SHA-256 of (see the module docstring)."""
    parts = [
        json_string(FORMAT),
        str(int(record["seq"])),
        str(int(record["id"])),
        json_string(record["service"]),
        json_string(record["at"]),
        _opt_string(record.get("request_id")),
        json_string(record["principal_kind"]),
        json_string(record["principal_client_id"]),
        json_string(record["action"]),
        json_string(record["resource_type"]),
        json_string(record["resource_id"]),
        jsonb_text(record.get("before")),
        jsonb_text(record.get("after")),
        json_string(record["prev_hash"]),
    ]
    return "[" + ",".join(parts) + "]"


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Failure:
    seq: int | None
    id: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    records: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    failure: Failure | None


class ChainVerifier:
    """Feed one service's records in seq order; the first record that does not hold is the failure.

    Reasons: `seq_gap` (not the previous seq + 1, or not the first seq asked for: a record before it is
    missing), `prev_hash_mismatch` (does not link to the previous record's hash, or to the anchor),
    `hash_mismatch` (its content is not what was hashed: altered), `service_mismatch`, `malformed`;
    at the end `missing_tail` / `head_mismatch` when the range should reach the chain's head and does not.
    """

    def __init__(self, *, service: str | None = None, from_seq: int = 1, anchor: str | None = None) -> None:
        self.service = service
        self.expected_seq = from_seq
        # Without an anchor the first record of a range that does not start the chain links to a record
        # not in hand: its prev_hash is taken as given (an auditor passes the hash kept from last time).
        self.expected_prev = GENESIS if from_seq == 1 and anchor is None else anchor
        self.records = 0
        self.first_seq: int | None = None
        self.last_hash: str | None = None
        self.failure: Failure | None = None

    def feed(self, record: dict[str, Any]) -> Failure | None:
        if self.failure is not None:
            return self.failure
        try:
            seq, id_ = int(record["seq"]), int(record["id"])
        except (KeyError, TypeError, ValueError):
            self.failure = Failure(None, None, "malformed")
            return self.failure
        try:
            if self.service is not None and record["service"] != self.service:
                self.failure = Failure(seq, id_, "service_mismatch")
            elif seq != self.expected_seq:
                self.failure = Failure(seq, id_, "seq_gap")
            elif self.expected_prev is not None and record["prev_hash"] != self.expected_prev:
                self.failure = Failure(seq, id_, "prev_hash_mismatch")
            elif record_hash(record) != record["hash"]:
                self.failure = Failure(seq, id_, "hash_mismatch")
        except (KeyError, TypeError, ValueError):
            self.failure = Failure(seq, id_, "malformed")
        if self.failure is not None:
            return self.failure
        self.records += 1
        self.first_seq = seq if self.first_seq is None else self.first_seq
        self.expected_seq = seq + 1
        self.expected_prev = self.last_hash = record["hash"]
        return None

    def finish(self, *, head_seq: int | None = None, head_hash: str | None = None) -> Verdict:
        """`head_seq`/`head_hash`: the chain's head, when the range was meant to reach it."""
        reached = self.expected_seq - 1
        if self.failure is None and head_seq is not None:
            if reached < head_seq:
                self.failure = Failure(reached + 1, None, "missing_tail")
            elif reached == head_seq and self.records and head_hash is not None and self.last_hash != head_hash:
                self.failure = Failure(reached, None, "head_mismatch")
        return Verdict(
            self.failure is None,
            self.records,
            self.first_seq,
            reached if self.records else None,
            self.last_hash,
            self.failure,
        )


def verify_export(lines: Iterable[str], *, anchor: str | None = None) -> Verdict:
    """An export of `GET /v1/audit/export`: a header line, then one record per line."""
    it = (line for line in lines if line.strip())
    try:
        header = parse_record(next(it))
    except (StopIteration, ValueError):
        return Verdict(False, 0, None, None, None, Failure(None, None, "malformed"))
    if header.get("format") != EXPORT_FORMAT:
        return Verdict(False, 0, None, None, None, Failure(None, None, "malformed"))
    from_seq, to_seq = int(header["from_seq"]), int(header["to_seq"])
    head_seq = int(header["head_seq"])
    verifier = ChainVerifier(service=header["service"], from_seq=from_seq, anchor=anchor)
    for line in it:
        try:
            record = parse_record(line)
        except ValueError:
            record = {}
        if verifier.feed(record) is not None:
            break
    reaches_head = to_seq >= head_seq
    return verifier.finish(
        head_seq=head_seq if reaches_head else to_seq, head_hash=header.get("head_hash") if reaches_head else None
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify an export of the desk's audit trail offline.")
    parser.add_argument("file", help="the export (JSON Lines), '-' for standard input")
    parser.add_argument(
        "--anchor",
        help="the hash of the record before the export's first one, as kept "
        "from an earlier export (required to link a range not starting at 1)",
    )
    args = parser.parse_args(argv)
    if args.file == "-":
        verdict = verify_export(sys.stdin, anchor=args.anchor)
    else:
        with open(args.file, encoding="utf-8") as f:
            verdict = verify_export(f, anchor=args.anchor)
    if verdict.ok:
        print(
            f"OK {verdict.records} records, seq {verdict.first_seq}..{verdict.last_seq}, last hash {verdict.last_hash}"
        )
        return 0
    f_ = verdict.failure
    assert f_ is not None
    print(f"FAILED at seq {f_.seq} (id {f_.id}): {f_.reason}; {verdict.records} records verified before it")
    return 1


if __name__ == "__main__":
    sys.exit(main())
