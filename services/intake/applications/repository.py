"""SQL on applications, their expense lines and the call's protocol counter."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import orjson
from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Application, ExpenseLine
from shared.access import company_reachable
from shared.auth import Principal
from shared.domain.receipts import GENESIS


def readable(principal: Principal) -> Select[Application]:
    """Applications the principal may see; anything else is a 404."""
    return select(Application).where(company_reachable(principal, Application.company_id))


def listing(
    principal: Principal,
    *,
    call_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    status: str | None = None,
    protocol_number: int | None = None,
    submitted_from: datetime | None = None,
    submitted_to: datetime | None = None,
) -> Select[Application]:
    """The applications within reach, filtered; `submitted_to` is exclusive, so consecutive ranges never overlap."""
    stmt = readable(principal)
    if call_id is not None:
        stmt = stmt.where(Application.call_id == call_id)
    if company_id is not None:
        stmt = stmt.where(Application.company_id == company_id)
    if status is not None:
        stmt = stmt.where(Application.status == status)
    if protocol_number is not None:
        stmt = stmt.where(Application.protocol_number == protocol_number)
    if submitted_from is not None:
        stmt = stmt.where(Application.submitted_at >= submitted_from)
    if submitted_to is not None:
        stmt = stmt.where(Application.submitted_at < submitted_to)
    return stmt


async def get_readable(
    session: AsyncSession, principal: Principal, application_id: uuid.UUID, *, for_update: bool = False
) -> Application | None:
    stmt = readable(principal).where(Application.id == application_id)
    if for_update:
        stmt = stmt.with_for_update(of=Application)
    return (await session.execute(stmt)).scalar_one_or_none()


async def lines_of(session: AsyncSession, application_id: uuid.UUID) -> list[ExpenseLine]:
    stmt = select(ExpenseLine).where(ExpenseLine.application_id == application_id).order_by(ExpenseLine.position)
    return list((await session.execute(stmt)).scalars())


async def applications_with_lines(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> list[tuple[Application, list[ExpenseLine]]]:
    """The applications with these ids and their expense lines, in two statements whatever their number."""
    apps = list((await session.execute(select(Application).where(Application.id.in_(ids)))).scalars())
    lines: dict[uuid.UUID, list[ExpenseLine]] = {a.id: [] for a in apps}
    if apps:
        stmt = (
            select(ExpenseLine)
            .where(ExpenseLine.application_id.in_(list(lines)))
            .order_by(ExpenseLine.application_id, ExpenseLine.position)
        )
        for line in (await session.execute(stmt)).scalars():
            lines[line.application_id].append(line)
    return [(a, lines[a.id]) for a in apps]


async def replace_lines(session: AsyncSession, application_id: uuid.UUID, lines: list[dict[str, Any]]) -> None:
    await session.execute(delete(ExpenseLine).where(ExpenseLine.application_id == application_id))
    for i, line in enumerate(lines):
        session.add(ExpenseLine(id=uuid.uuid4(), application_id=application_id, position=i, **line))
    await session.flush()


async def chain_hash_before(session: AsyncSession, app: Application) -> str:
    """The register's link before this application's receipt (the genesis hash for protocol 1)."""
    if not app.protocol_number or app.protocol_number == 1:
        return GENESIS
    stmt = select(Application.chain_hash).where(
        Application.call_id == app.call_id, Application.protocol_number == app.protocol_number - 1
    )
    return (await session.execute(stmt)).scalar_one_or_none() or GENESIS


_DRAFT_COLUMNS = """
a.id, a.call_id, a.company_id, a.partner_id, a.status, a.title, a.action_plan, a.flat_rates, a.network,
a.de_minimis_declarations, a.stamp_duty_id,
a.version, c.code AS call_code, c.current_version, c.opens_at, c.closes_at, c.demo_opens_at, c.demo_closes_at,
co.vat_number, co.size_class, co.ateco_code, co.approved_financial_statements, co.registered_office,
co.operating_sites, co.lombardy_site_commitment, co.turnover, co.previous_year_export_sales, co.export_history,
co.version AS company_version,
(SELECT coalesce(json_agg(json_build_object('category', l.category, 'description', l.description,
                                            'amount', l.amount::text, 'target_market', l.target_market,
                                            'supplier', l.supplier) ORDER BY l.position), '[]')
   FROM intake.expense_lines l WHERE l.application_id = a.id) AS lines
"""
_DRAFT_FROM = """
  FROM intake.applications a
  JOIN intake.calls c ON c.id = a.call_id
  JOIN intake.companies co ON co.id = a.company_id
"""
_SUBMIT_SELECT = "SELECT " + _DRAFT_COLUMNS + _DRAFT_FROM
# The reachability rule of shared.access, as SQL for the submit path ($2: the company or partner).
_SUBMIT_REACH = {
    "all": _SUBMIT_SELECT + " WHERE a.id = $1 AND $2::uuid IS NULL",
    "company": _SUBMIT_SELECT + " WHERE a.id = $1 AND a.company_id = $2",
    "partner": _SUBMIT_SELECT + " WHERE a.id = $1 AND EXISTS (SELECT 1 FROM intake.delegations d"
    " WHERE d.company_id = a.company_id AND d.partner_id = $2 AND d.status = 'active')",
}


async def driver_connection(session: AsyncSession) -> Connection:
    """The asyncpg connection under the session (inside its transaction or savepoint, if any).

    The submit path talks to it directly: through the ORM its two statements cost several times the
    database's own time (result processing of the JSON columns, per-statement overhead)."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None  # a live connection of the session's transaction
    typed: Connection = driver
    return typed


async def load_for_submit(conn: Connection, principal: Principal, application_id: uuid.UUID) -> DraftRow | None:
    """Everything a submit needs, in one round trip: the draft (if within reach), its call, its company and
    its expense lines. An earlier use of the request's idempotency key is found by the commit itself (its
    insert of the key conflicts), or by `idempotency_record` when the application is no longer a draft."""
    if principal.reads_everything:
        sql, who = _SUBMIT_REACH["all"], None
    elif principal.kind == "company":
        sql, who = _SUBMIT_REACH["company"], principal.company_id
    else:
        sql, who = _SUBMIT_REACH["partner"], principal.partner_id
    if who is None and not principal.reads_everything:
        return None
    row = await conn.fetchrow(sql, application_id, who)
    return None if row is None else _typed(DraftRow, row)


def commit_or_load(commit_call: str) -> str:
    """`commit_call` (`intake.commit_submission` in its pre-checked mode, with $1 the application, $3 the
    caller's reach and $4 whom it names) and, when it answers `not_prechecked`, the draft as
    `load_for_submit` reads it (same reach rule), in the same round trip: its columns follow the function's,
    each prefixed `draft_` (all null when it committed, or when the draft is not within reach), and
    `loaded_draft` reads them. A draft with no current verdict then costs one statement less."""
    columns = ", ".join(f"{expression} AS draft_{name}" for expression, name in _split_columns(_DRAFT_COLUMNS))
    # OFFSET 0 keeps the planner from pulling the subquery up into a join: the outcome test then stays a
    # one-time filter, and a submit that committed (or replayed) never reads the draft.
    return (
        f"SELECT s.*, d.* FROM {commit_call} s LEFT JOIN LATERAL (SELECT {columns}{_DRAFT_FROM}"
        " WHERE s.outcome = 'not_prechecked' AND a.id = $1 AND CASE $3::text WHEN 'all' THEN $4::uuid IS NULL"
        " WHEN 'company' THEN a.company_id = $4 ELSE EXISTS (SELECT 1 FROM intake.delegations dl"
        " WHERE dl.company_id = a.company_id AND dl.partner_id = $4 AND dl.status = 'active') END OFFSET 0) d ON true"
    )


def commit_or_load_group(group_call: str) -> str:
    """`commit_or_load` for a group (`intake.commit_submission_group`, whose arguments are arrays: $1 the
    applications, $3 the callers' reaches, $4 whom they name): a row per submit in the group's order, each
    `not_prechecked` answer with its draft (same reach rule), in one round trip."""
    columns = ", ".join(f"{expression} AS draft_{name}" for expression, name in _split_columns(_DRAFT_COLUMNS))
    reach, reach_id = "($3::text[])[s.ord]", "($4::uuid[])[s.ord]"
    return (
        f"SELECT s.*, d.* FROM {group_call} s LEFT JOIN LATERAL (SELECT {columns}{_DRAFT_FROM}"
        f" WHERE s.outcome = 'not_prechecked' AND a.id = ($1::uuid[])[s.ord] AND CASE {reach} WHEN 'all' THEN"
        f" {reach_id} IS NULL WHEN 'company' THEN a.company_id = {reach_id} ELSE EXISTS (SELECT 1 FROM"
        f" intake.delegations dl WHERE dl.company_id = a.company_id AND dl.partner_id = {reach_id}"
        " AND dl.status = 'active') END OFFSET 0) d ON true ORDER BY s.ord"
    )


def _split_columns(columns: str) -> list[tuple[str, str]]:
    """The select list's (expression, column name) pairs: split at top-level commas, the name after a last
    ` AS ` or else the expression's last dotted part."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(columns + ","):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            expression = " ".join(columns[start:i].split())
            start = i + 1
            if not expression:
                continue
            head, sep, name = expression.rpartition(" AS ")
            if sep and ")" not in name:
                out.append((head, name))
            else:
                out.append((expression, expression.rsplit(".", 1)[-1]))
    return out


def loaded_draft(record: Record) -> DraftRow | None:
    """The draft `commit_or_load` read with a `not_prechecked` answer, or None if it is not within reach."""
    if record["draft_id"] is None:
        return None
    values = {}
    for name in _DRAFT_FIELDS:
        v = record["draft_" + name]
        if name in _JSON_COLUMNS and isinstance(v, str):
            v = orjson.loads(v)
        values[name] = v
    return DraftRow(**values)


async def load_drafts(conn: Connection, application_ids: list[uuid.UUID]) -> list[DraftRow]:
    """What the pre-check needs of each of these applications that is still a draft (no reach rule: the
    caller is the desk itself, recording verdicts)."""
    rows = await conn.fetch(_SUBMIT_SELECT + " WHERE a.id = ANY($1::uuid[]) AND a.status = 'draft'", application_ids)
    return [_typed(DraftRow, r) for r in rows]


_MEMBERS = """
SELECT co.id, co.name, co.vat_number, co.size_class, co.ateco_code, co.approved_financial_statements,
       co.registered_office, co.operating_sites, co.lombardy_site_commitment, co.turnover,
       co.previous_year_export_sales, co.export_history, co.related_enterprises,
       CASE $2::text WHEN 'all' THEN true
                     WHEN 'company' THEN co.id = $3::uuid
                     ELSE EXISTS (SELECT 1 FROM intake.delegations d WHERE d.company_id = co.id
                                     AND d.partner_id = $3::uuid AND d.status = 'active') END AS reachable
  FROM intake.companies co WHERE co.id = ANY($1::uuid[])
"""


async def network_companies(
    conn: Connection, company_ids: list[uuid.UUID], reach: str, who: uuid.UUID | None
) -> dict[uuid.UUID, MemberRow]:
    """The member companies of a network by id, each with whether the caller (`reach`, `who`: as the submit's
    reach rule) may act for it now."""
    if not company_ids:
        return {}
    rows = await conn.fetch(_MEMBERS, company_ids, reach, who)
    return {r["id"]: _typed(MemberRow, r) for r in rows}


async def idempotency_record(conn: Connection, principal: str, key: str) -> Record | None:
    """The live record of an earlier request with this idempotency key, if any."""
    return await conn.fetchrow(
        "SELECT request_hash, render_ref FROM desk.idempotency_keys"
        " WHERE principal = $1 AND key = $2 AND expires_at > now()",
        principal,
        key,
    )


class Record(Protocol):
    """A row as asyncpg returns it: read by column name."""

    def __getitem__(self, key: str) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class Connection(Protocol):
    """What the submit path uses of an asyncpg connection (it runs on the driver's connection, not the ORM's)."""

    async def fetch(self, query: str, *args: Any) -> list[Record]: ...

    async def fetchrow(self, query: str, *args: Any) -> Record | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...

    async def fetchmany(self, query: str, args: Iterable[Sequence[Any]]) -> list[Record]: ...

    async def executemany(self, command: str, args: Iterable[Sequence[Any]]) -> None: ...


_JSON_COLUMNS = frozenset(
    {
        "action_plan",
        "network",
        "de_minimis_declarations",
        "registered_office",
        "operating_sites",
        "export_history",
        "related_enterprises",
        "lines",
        "receipt",
    }
)

R = TypeVar("R")


def _typed(cls: type[R], row: Record) -> R:
    """The row as `cls` (a dataclass naming exactly the statement's columns), JSON columns decoded whichever codec
    the pool set: a column missing from the statement, or one too many, is an error at once."""
    values = {}
    for name in row.keys():
        v = row[name]
        if name in _JSON_COLUMNS and isinstance(v, str):
            v = orjson.loads(v)
        values[name] = v
    return cls(**values)


@dataclass(slots=True)
class DraftRow:
    """An application with its call, its company and its expense lines (`_SUBMIT_SELECT`): what a submit and a
    pre-check read in one round trip."""

    id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    partner_id: uuid.UUID | None
    status: str
    title: str
    action_plan: dict[str, Any]
    flat_rates: list[str]
    network: dict[str, Any] | None
    de_minimis_declarations: list[dict[str, Any]]
    stamp_duty_id: str | None
    version: int
    call_code: str
    current_version: int
    opens_at: datetime
    closes_at: datetime
    demo_opens_at: datetime | None
    demo_closes_at: datetime | None
    vat_number: str
    size_class: str
    ateco_code: str
    approved_financial_statements: int
    registered_office: dict[str, Any]
    operating_sites: list[dict[str, Any]]
    lombardy_site_commitment: bool
    turnover: Decimal
    previous_year_export_sales: Decimal
    export_history: list[dict[str, Any]]
    company_version: int
    lines: list[dict[str, Any]]


_DRAFT_FIELDS = tuple(DraftRow.__dataclass_fields__)


@dataclass(slots=True)
class MemberRow:
    """A network member's company (`_MEMBERS`), and whether the caller may act for it now."""

    id: uuid.UUID
    name: str
    vat_number: str
    size_class: str
    ateco_code: str
    approved_financial_statements: int
    registered_office: dict[str, Any]
    operating_sites: list[dict[str, Any]]
    lombardy_site_commitment: bool
    turnover: Decimal
    previous_year_export_sales: Decimal
    export_history: list[dict[str, Any]]
    related_enterprises: list[dict[str, Any]]
    reachable: bool


@dataclass(slots=True)
class ReceiptRow:
    """A submitted application's receipt and its links in the call's register (`_RECEIPT`)."""

    receipt: dict[str, Any]
    call_id: uuid.UUID
    chain_hash: str
    previous_hash: str


_RECEIPT = """
SELECT a.receipt, a.call_id, a.chain_hash,
       coalesce((SELECT p.chain_hash FROM intake.applications p
                  WHERE p.call_id = a.call_id AND p.protocol_number = a.protocol_number - 1), $2) AS previous_hash
  FROM intake.applications a WHERE a.id = $1 AND a.receipt IS NOT NULL
"""


async def receipt_row(conn: Connection, application_id: uuid.UUID) -> ReceiptRow | None:
    """A submitted application's receipt, its chain link and the link before it."""
    row = await conn.fetchrow(_RECEIPT, application_id, GENESIS)
    return None if row is None else _typed(ReceiptRow, row)


async def rules_document(conn: Connection, call_id: uuid.UUID, version: int) -> dict[str, Any]:
    raw = await conn.fetchval(
        "SELECT rules FROM intake.call_versions WHERE call_id = $1 AND version = $2", call_id, version
    )
    document: dict[str, Any] = orjson.loads(raw) if isinstance(raw, str) else raw
    return document
