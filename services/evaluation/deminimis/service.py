"""Use cases of the de minimis register and of the funding computation.

The register holds the aid granted to each VAT number: entered by officers (source ``manual``) or
imported from a CSV export of the national state-aid register (source ``RNA``, reference = the COR).
The funding computation turns an admissible, merit-passed evaluation into grant and loan with
``shared.domain.funding`` and caps them with ``shared.domain.de_minimis.cap_new_aid`` against the
register for the single undertaking (the company and its linked enterprises, from intake's API).

CSV import (``import_rna_csv``). Columns, by header name (case, spaces and punctuation ignored; any
other column is ignored, so a full RNA export can be sent as is):

==============================  =============================================================
column                          meaning
==============================  =============================================================
CODICE_FISCALE_BENEFICIARIO     the beneficiary's partita IVA (11 digits, "IT" optional)
DATA_CONCESSIONE                grant date: ``dd/mm/yyyy`` or ``yyyy-mm-dd``
ELEMENTO_DI_AIUTO               the aid amount (gross grant equivalent); alias IMPORTO_AIUTO
SOGGETTO_CONCEDENTE             the granting authority
REGOLAMENTO                     the legal basis (e.g. "Reg. (UE) 2023/2831")
COR                             the register's code of the aid: the entry's reference
==============================  =============================================================

Separator ``;`` or ``,`` (whichever the header uses), UTF-8 (with or without BOM) or Latin-1.
Amounts take Italian decimal commas (``12.345,67``, dots then are thousands separators) or a
decimal point (``12345.67``); at most two decimals. A row whose COR is already in the register (or
earlier in the file) is skipped and counted. Any invalid row makes the whole import fail with every
error (line number and column) and nothing imported, unless ``skip_invalid`` is set.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.it import iva

from services.evaluation.admissibility.service import CREDIT_CLASS_CHECK, fetch_company, intake_errors
from services.evaluation.deminimis import repository
from services.evaluation.models import Evaluation, PriorAid, ReceivedApplication
from services.evaluation.rule_inputs import single_undertaking
from services.evaluation.rules import rules_of_application, rules_of_call
from shared.audit import record_audit, record_event
from shared.clients.intake import IntakeClient
from shared.contracts.companies import CompanyOut
from shared.domain import de_minimis as dm
from shared.domain.application_check import _pct_en, _pct_it
from shared.domain.call_rules import CallRules
from shared.domain.funding import compute_aid, repayment_plan
from shared.domain.money import CENT, ZERO, cents_ok, eur_en, eur_it
from shared.errors import DE_MINIMIS_CEILING, Conflict, DeskError, ProblemError, ValidationFailed
from shared.i18n import Lang
from shared.routing import Actor

ROME = ZoneInfo("Europe/Rome")  # the calendar of the register and of the call
MANUAL = "manual"
RNA = "RNA"
DESK = "desk"
DECLARED = "declared"
#: The granting authority the desk's own concessions carry in the register.
DESK_AUTHORITY = "Regione Lombardia - sportello unico"

COLUMNS: dict[str, tuple[str, ...]] = {
    "vat_number": ("CODICE_FISCALE_BENEFICIARIO", "CF_BENEFICIARIO", "PARTITA_IVA_BENEFICIARIO"),
    "granted_on": ("DATA_CONCESSIONE",),
    "amount": ("ELEMENTO_DI_AIUTO", "IMPORTO_AIUTO", "IMPORTO_ELEMENTO_DI_AIUTO"),
    "granting_authority": ("SOGGETTO_CONCEDENTE", "DENOMINAZIONE_SOGGETTO_CONCEDENTE"),
    "regulation": ("REGOLAMENTO", "TITOLO_REGOLAMENTO"),
    "reference": ("COR", "CODICE_COR"),
}


def aid_out(a: PriorAid) -> dict[str, Any]:
    return {
        "id": a.id,
        "vat_number": a.vat_number,
        "granted_on": a.granted_on,
        "amount": a.amount,
        "granting_authority": a.granting_authority,
        "regulation": a.regulation,
        "source": a.source,
        "reference": a.reference,
        "created_by": a.created_by,
        "created_at": a.created_at,
    }


def _domain(a: PriorAid) -> dm.PriorAid:
    return dm.PriorAid(
        vat_number=a.vat_number, granted_on=a.granted_on, amount=a.amount, source=a.source, reference=a.reference
    )


def countable(aids: list[PriorAid]) -> list[PriorAid]:
    """The entries that count: an RNA entry whose COR is the reference of one of the desk's own concessions is
    that concession as the national register shows it, so it is counted once (as the desk's)."""
    desk = {a.reference for a in aids if a.source == DESK}
    return [a for a in aids if not (a.source == RNA and a.reference in desk)]


def declared_of(snapshot: dict[str, Any]) -> list[dm.PriorAid]:
    """The applicant's de minimis self-declaration, from the submitted application (intake's contract)."""
    return [
        dm.PriorAid(
            vat_number=dm.normalise_vat(str(d["vat_number"])),
            granted_on=date.fromisoformat(str(d["granted_on"])),
            amount=Decimal(str(d["amount"])),
            source=DECLARED,
            reference=str(d.get("reference") or f"{DECLARED} {i + 1}"),
        )
        for i, d in enumerate(snapshot.get("de_minimis_declarations") or [])
    ]


def everything(aids: list[PriorAid], declared: list[dm.PriorAid]) -> list[dm.PriorAid]:
    """What counts against the ceiling: the register (``countable``) and the declared aid, a declared aid quoting
    the COR of a register entry being that entry (counted once)."""
    register = [_domain(a) for a in countable(aids)]
    references = {a.reference for a in register}
    return register + [d for d in declared if d.reference not in references]


def _steps(steps: Any) -> list[dict[str, Any]]:
    return [
        {
            "code": s.code,
            "detail_it": s.detail_it,
            "detail_en": s.detail_en,
            "amount": None if s.amount is None else str(s.amount),
        }
        for s in steps
    ]


# ---------------------------------------------------------------- the register


async def record_aid(
    *,
    session: AsyncSession,
    actor: Actor,
    vat_number: str,
    granted_on: date,
    amount: Decimal,
    granting_authority: str,
    regulation: str,
    reference: str,
) -> PriorAid:
    row = {
        "id": uuid.uuid4(),
        "vat_number": dm.normalise_vat(vat_number),
        "granted_on": granted_on,
        "amount": amount,
        "granting_authority": granting_authority,
        "regulation": regulation,
        "source": MANUAL,
        "reference": reference,
        "created_by": actor.principal.client_id,
    }
    inserted = await repository.insert_aids(session, [row])
    if not inserted:
        raise Conflict(
            f"Un aiuto con riferimento {reference} è già registrato.",
            f"An aid with reference {reference} is already recorded.",
            extra={"reason": "duplicate"},
        )
    await record_audit(
        session,
        actor,
        action="de_minimis.aid_recorded",
        resource_type="de_minimis_aid",
        resource_id=inserted[0].id,
        after={k: row[k] for k in row if k != "id"},
    )
    return inserted[0]


def italian_today(now: datetime | None = None) -> date:
    """Today in Rome. The register's dates are Italian calendar days, like the desk's own decrees: a grant
    dated today is not "in the future" in the hour when Rome is already on the next day and UTC is not."""
    return (now or datetime.now(UTC)).astimezone(ROME).date()


def _header_key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.strip().upper()).strip("_")


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("latin-1")


def _amount(raw: str) -> Decimal:
    s = raw.replace("€", "").replace(" ", "").replace("\u00a0", "")
    if "," in s:
        s = s.replace(".", "").replace(",", ".")
    d = Decimal(s)
    if not d.is_finite() or d < 0 or not cents_ok(d):
        raise InvalidOperation
    return d.quantize(Decimal("0.01"))


def _date(raw: str) -> date:
    s = raw.strip()
    for fmt in ("%d/%m/%Y", "%d-%m-%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise ValueError(s)


_MESSAGES: dict[str, tuple[str, str]] = {
    "vat_number": (
        "Partita IVA del beneficiario non valida (11 cifre con cifra di controllo).",
        "Invalid beneficiary VAT number (11 digits with a check digit).",
    ),
    "granted_on": (
        "Data di concessione non valida (gg/mm/aaaa o aaaa-mm-gg, non futura).",
        "Invalid grant date (dd/mm/yyyy or yyyy-mm-dd, not in the future).",
    ),
    "amount": (
        "Importo non valido: non negativo, al massimo due decimali (es. 12.345,67).",
        "Invalid amount: not negative, at most two decimals (e.g. 12.345,67 or 12345.67).",
    ),
    "granting_authority": ("Soggetto concedente mancante o troppo lungo.", "Granting authority missing or too long."),
    "regulation": ("Regolamento mancante o troppo lungo.", "Regulation missing or too long."),
    "reference": ("COR mancante o troppo lungo.", "COR missing or too long."),
}


def parse_rna_csv(content: bytes, *, today: date) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    """The valid rows (with their line) and the errors of a state-aid register export (see the module)."""
    text = _decode(content)
    first = next(iter(text.splitlines()), "")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    # newline="": lines end at \n, \r\n or a bare \r, and a quoted field keeps its own (the csv module's way)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    lines = _readable(reader)
    header = next(lines, None)
    if header is None:
        raise ValidationFailed(
            "Il file è vuoto.",
            "The file is empty.",
            errors=[ProblemError("csv_empty", "/", "File vuoto.", "Empty file.")],
        )
    keys = [_header_key(h) for h in header]
    positions: dict[str, int] = {}
    missing = []
    for field, names in COLUMNS.items():
        idx = next((keys.index(n) for n in names if n in keys), None)
        if idx is None:
            missing.append(names[0])
        else:
            positions[field] = idx
    if missing:
        raise ValidationFailed(
            "Mancano colonne obbligatorie nell'intestazione.",
            "Required columns are missing from the header.",
            errors=[
                ProblemError(
                    "csv_column_missing",
                    f"/header/{name}",
                    f"Colonna {name} mancante.",
                    f"Column {name} is missing.",
                    extra={"line": 1, "field": name},
                )
                for name in missing
            ],
        )
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    for cells in lines:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        row: dict[str, Any] = {}
        bad = False
        for field, idx in positions.items():
            raw = cells[idx].strip() if idx < len(cells) else ""
            column = header[idx].strip()
            try:
                row[field] = _parse(field, raw, today)
            except (ValueError, InvalidOperation):
                it, en = _MESSAGES[field]
                errors.append(
                    {
                        "line": line,
                        "field": column,
                        "code": f"{field}_invalid",
                        "message_it": it,
                        "message_en": en,
                        "value": raw[:100],
                    }
                )
                bad = True
        if not bad:
            rows.append((line, row))
    return rows, errors


def _readable(reader: Any) -> Iterator[list[str]]:
    """The reader's rows; a file the csv module cannot read (a field over its size limit, say) is a 422 naming the
    line, not a server error."""
    try:
        yield from reader
    except csv.Error as exc:
        line = reader.line_num
        raise ValidationFailed(
            f"Il file non è un CSV leggibile (riga {line}).",
            f"The file is not a readable CSV (line {line}).",
            errors=[
                ProblemError(
                    "csv_unreadable",
                    f"/lines/{line}",
                    f"Riga {line} illeggibile: {exc}.",
                    f"Line {line} cannot be read: {exc}.",
                    extra={"line": line},
                )
            ],
        ) from None


def _parse(field: str, raw: str, today: date) -> Any:
    if field == "vat_number":
        vat = dm.normalise_vat(raw)
        if not iva.is_valid(vat):
            raise ValueError(raw)
        return vat
    if field == "granted_on":
        d = _date(raw)
        if d > today:
            raise ValueError(raw)
        return d
    if field == "amount":
        return _amount(raw)
    limit = 100 if field == "reference" else 300
    if not raw or len(raw) > limit:
        raise ValueError(raw)
    return raw


async def import_rna_csv(*, session: AsyncSession, actor: Actor, content: bytes, skip_invalid: bool) -> dict[str, Any]:
    today = italian_today()
    rows, errors = parse_rna_csv(content, today=today)
    if errors and not skip_invalid:
        raise ValidationFailed(
            f"{len(errors)} errori nel file: nessun aiuto importato.",
            f"{len(errors)} errors in the file: nothing imported.",
            errors=[
                ProblemError(
                    e["code"],
                    f"/lines/{e['line']}/{e['field']}",
                    e["message_it"],
                    e["message_en"],
                    extra={"line": e["line"], "field": e["field"], "value": e["value"]},
                )
                for e in errors
            ],
        )
    values = [
        {"id": uuid.uuid4(), **row, "source": RNA, "created_by": actor.principal.client_id} for _line, row in rows
    ]
    inserted = await repository.insert_aids(session, values)
    report = {
        "imported": len(inserted),
        "skipped_duplicates": len(values) - len(inserted),
        "errors": [{k: e[k] for k in ("line", "field", "code", "message_it", "message_en")} for e in errors],
    }
    await record_audit(
        session,
        actor,
        action="de_minimis.imported",
        resource_type="de_minimis_import",
        resource_id=uuid.uuid4(),
        after={
            "source": RNA,
            "imported": report["imported"],
            "skipped_duplicates": report["skipped_duplicates"],
            "invalid_rows": len(errors),
            "references": [a.reference for a in inserted],
        },
    )
    return report


# ---------------------------------------------------------------- the single undertaking


def _members_out(company: CompanyOut | None, vat: str) -> list[dict[str, Any]]:
    if company is None:
        return [{"vat_number": vat, "name": None, "relation": "applicant"}]
    linked = {dm.normalise_vat(r.vat_number): r.name for r in company.related_enterprises if r.relation == "linked"}
    return [
        {"vat_number": dm.normalise_vat(company.vat_number), "name": company.name, "relation": "applicant"},
        *({"vat_number": v, "name": n, "relation": "linked"} for v, n in linked.items()),
    ]


async def undertaking(
    *,
    session: AsyncSession,
    intake: IntakeClient,
    vat_number: str,
    on: date | None,
    call_id: uuid.UUID | None,
    lang: Lang,
) -> dict[str, Any]:
    vat = dm.normalise_vat(vat_number)
    with intake_errors(f"L'impresa {vat}", f"Company {vat}", field=("path", "/vat_number")):
        company = await intake.find_company_by_vat(vat)
    members = single_undertaking(company) if company is not None else [vat]
    # the caller named the call (`call_id`): one intake does not know is a 404, not a conflict
    rules = await rules_of_call(intake, call_id, call_in_path=True) if call_id is not None else None
    day = on or (datetime.now(rules.tz).date() if rules is not None else italian_today())
    aids = await repository.aids_of(session, members)
    period = None
    if rules is not None:
        outcome = dm.cap_new_aid(
            rules, [_domain(a) for a in countable(aids)], members, ZERO, ZERO, Decimal(0), grant_date=day
        )
        shown = ("period", "prior_aid_counted", "prior_aid_outside_period", "prior_total", "headroom")
        period = {
            "call_id": call_id,
            "regulation": rules.de_minimis.regulation,
            "ceiling": outcome.ceiling,
            "window_start": outcome.period.window_start,
            "window_end": outcome.period.window_end,
            "total": outcome.period.total,
            "headroom": outcome.headroom,
            "steps": [
                {**s, "detail": s["detail_it"] if lang == "it" else s["detail_en"]}
                for s in _steps(outcome.computation)
                if s["code"] in shown
            ],
        }
    return {
        "vat_number": vat,
        "company_id": company.id if company is not None else None,
        "on": day,
        "members": _members_out(company, vat),
        "aids": [aid_out(a) for a in aids],
        "period": period,
    }


# ---------------------------------------------------------------- the funding computation


def _step(code: str, it: str, en: str, amount: Decimal | None = None) -> dict[str, Any]:
    return {"code": code, "detail_it": it, "detail_en": en, "amount": None if amount is None else str(amount)}


def _require_fundable(evaluation: Evaluation, rules: CallRules) -> str:
    if evaluation.stage != "admissible":
        raise Conflict(
            "Il finanziamento si calcola solo per una domanda ammissibile non ancora calcolata.",
            "Funding is computed only for an admissible application not computed yet.",
            extra={"reason": "not_admissible", "stage": evaluation.stage},
        )
    if rules.scoring.criteria and evaluation.merit_verdict != "passed":
        raise Conflict(
            "La valutazione di merito non è conclusa con esito positivo.",
            "The merit evaluation has not been passed.",
            extra={"reason": "merit_not_passed", "merit_verdict": evaluation.merit_verdict},
        )
    if evaluation.credit_class is None:
        raise Conflict(
            "Manca la classe di merito creditizio: va attribuita prima di calcolare il finanziamento.",
            "No credit-scoring class yet: assign it before computing the funding.",
            extra={"reason": "credit_class_missing"},
        )
    if evaluation.eligible_total is None:
        raise Conflict(
            "Spese ammissibili non determinate.",
            "Eligible expenses not determined.",
            extra={"reason": "eligible_total_missing"},
        )
    return evaluation.credit_class


async def compute_funding(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    evaluation: Evaluation,
    app: ReceivedApplication,
    loan_years: int | None,
) -> Evaluation:
    rules = await rules_of_application(intake, app)  # the version it was submitted under
    credit_class = _require_fundable(evaluation, rules)
    terms = rules.aid.loan
    years = terms.max_years if loan_years is None else loan_years
    if not terms.min_years <= years <= terms.max_years:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "loan_years_out_of_range",
                    "/loan_years",
                    f"La durata del finanziamento va da {terms.min_years} a {terms.max_years} anni.",
                    f"The loan lasts {terms.min_years} to {terms.max_years} years.",
                    extra={"min": terms.min_years, "max": terms.max_years},
                )
            ]
        )
    try:
        share = rules.loan_cap_share(credit_class)
        ref_rate = dm.reference_rate(rules, credit_class)
    except KeyError:
        raise Conflict(
            f"La classe di merito creditizio '{credit_class}' non è prevista dal bando.",
            f"Credit-scoring class '{credit_class}' is not provided for by the call.",
            extra={"reason": "credit_class_unknown"},
        ) from None
    company = await fetch_company(intake, app.company_id)
    members = single_undertaking(company)
    today = datetime.now(rules.tz).date()
    eligible = evaluation.eligible_total
    assert eligible is not None

    aid = compute_aid(rules, eligible, share)
    grace = terms.grace_months
    per_euro = dm.gge_per_euro(rules, years, grace, ref_rate)
    requested_gge = dm.loan_gge(aid.loan, rules, years, grace, ref_rate)
    steps = [
        _step(
            "eligible_total",
            f"Spese ammissibili dopo i tagli: {eur_it(eligible)}.",
            f"Eligible expenses after the cuts: {eur_en(eligible)}.",
            eligible,
        ),
        _step(
            "credit_class",
            f"Classe di merito creditizio {credit_class}: {_pct_it(share)} del massimale del finanziamento "
            f"({eur_it(terms.cap)})" + (", finanziamento escluso." if share == 0 else "."),
            f"Credit-scoring class {credit_class}: {_pct_en(share)} of the loan cap ({eur_en(terms.cap)})"
            + (", loan excluded." if share == 0 else "."),
            share,
        ),
        _step(
            "grant",
            f"Contributo: {_pct_it(rules.aid.grant.percent)} delle spese, massimo "
            f"{eur_it(rules.aid.grant.cap)}: {eur_it(aid.grant)}.",
            f"Grant: {_pct_en(rules.aid.grant.percent)} of the expenses, at most {eur_en(rules.aid.grant.cap)}: "
            f"{eur_en(aid.grant)}.",
            aid.grant,
        ),
        _step(
            "loan",
            f"Finanziamento: {_pct_it(terms.percent)} delle spese, entro il massimale e l'intensità "
            f"massima {_pct_it(rules.aid.max_intensity)}: {eur_it(aid.loan)}.",
            f"Loan: {_pct_en(terms.percent)} of the expenses, within the cap and the maximum intensity "
            f"{_pct_en(rules.aid.max_intensity)}: {eur_en(aid.loan)}.",
            aid.loan,
        ),
        _step(
            "reference_rate",
            f"Tasso di riferimento: tasso base {_pct_it(rules.de_minimis.reference_base_rate)} "
            f"+ margine della classe {credit_class} = {_pct_it(ref_rate)}; tasso del "
            f"finanziamento {_pct_it(terms.annual_rate)}.",
            f"Reference rate: base rate {_pct_en(rules.de_minimis.reference_base_rate)} + margin of class "
            f"{credit_class} = {_pct_en(ref_rate)}; loan rate {_pct_en(terms.annual_rate)}.",
            ref_rate,
        ),
        _step(
            "loan_gge",
            f"ESL del finanziamento di {eur_it(aid.loan)} in {years} anni ({grace} mesi di "
            f"preammortamento): {eur_it(requested_gge)} ({per_euro} per euro).",
            f"GGE of the loan of {eur_en(aid.loan)} over {years} years ({grace} months' grace): "
            f"{eur_en(requested_gge)} ({per_euro} per euro).",
            requested_gge,
        ),
    ]
    prior = everything(await repository.aids_of(session, members), declared_of(app.snapshot))
    outcome = dm.cap_new_aid(rules, prior, members, aid.grant, aid.loan, per_euro, grant_date=today)
    grant, loan = outcome.allowed_grant, outcome.allowed_loan
    refused = outcome.refused
    plan = repayment_plan(loan, terms.annual_rate, years, grace) if loan > 0 else ()
    if refused:
        steps.append(
            _step(
                "refused",
                "L'aiuto non può essere concesso: massimale de minimis raggiunto.",
                "The aid cannot be granted: de minimis ceiling reached.",
                ZERO,
            )
        )
    elif outcome.reduced:
        steps.append(
            _step(
                "de_minimis_reduced",
                f"Ridotto per il massimale de minimis: contributo {eur_it(grant)}, finanziamento {eur_it(loan)}.",
                f"Reduced under the de minimis ceiling: grant {eur_en(grant)}, loan {eur_en(loan)}.",
                grant + loan,
            )
        )
    loan_eq = outcome.allowed_loan_equivalent
    funding = {
        "computed_on": today.isoformat(),
        "refused": refused,
        "reason": "de_minimis_ceiling" if refused else None,
        "credit_class": credit_class,
        "loan_cap_share": str(share),
        "loan_years": years,
        "grace_months": grace,
        "annual_rate": str(terms.annual_rate),
        "reference_rate": str(ref_rate),
        "gge_per_euro": str(per_euro),
        "eligible_total": str(eligible),
        "requested_grant": str(aid.grant),
        "requested_loan": str(aid.loan),
        "grant": str(grant),
        "loan": str(loan),
        "loan_gge": str(loan_eq),
        "total_aid": str(grant + loan),
        "installments": [
            {
                "number": i.number,
                "month": i.month,
                "interest": str(i.interest),
                "principal": str(i.principal),
                "payment": str(i.payment),
                "outstanding": str(i.outstanding),
            }
            for i in plan
        ],
        "steps": steps,
    }
    de_minimis = {
        "grant_date": today.isoformat(),
        "members": members,
        "ceiling": str(outcome.ceiling),
        "window_start": outcome.period.window_start.isoformat(),
        "window_end": outcome.period.window_end.isoformat(),
        "prior_total": str(outcome.period.total),
        "headroom": str(outcome.headroom),
        "requested_equivalent": str(outcome.requested_equivalent),
        "allowed_equivalent": str(outcome.allowed_equivalent),
        "reduced": outcome.reduced,
        "refused": refused,
        "steps": _steps(outcome.computation),
    }
    network = None
    total_grant, total_loan, total_gge = grant, loan, loan_eq
    if evaluation.network and not refused:
        network = await _members_funding(
            session=session,
            rules=rules,
            network=evaluation.network,
            snapshot=app.snapshot,
            share=share,
            per_euro=per_euro,
            today=today,
        )
        network["lead"] = {**network["lead"], "grant": str(grant), "loan": str(loan), "loan_gge": str(loan_eq)}
        total_grant = grant + sum((Decimal(m["grant"]) for m in network["members"]), ZERO)
        total_loan = loan + sum((Decimal(m["loan"]) for m in network["members"]), ZERO)
        total_gge = loan_eq + sum((Decimal(m["loan_gge"]) for m in network["members"]), ZERO)
        network.update(
            grant=str(total_grant),
            loan=str(total_loan),
            loan_gge=str(total_gge),
            total_aid=str(total_grant + total_loan),
        )
        steps.append(
            _step(
                "network",
                f"Rete: capofila {eur_it(grant + loan)} e {len(network['members'])} membri, "
                f"aiuto totale {eur_it(total_grant + total_loan)} (contributo "
                f"{eur_it(total_grant)}, finanziamento {eur_it(total_loan)}).",
                f"Network: lead {eur_en(grant + loan)} and {len(network['members'])} members, total aid "
                f"{eur_en(total_grant + total_loan)} (grant {eur_en(total_grant)}, loan "
                f"{eur_en(total_loan)}).",
                total_grant + total_loan,
            )
        )
    before = {
        "stage": evaluation.stage,
        "grant": evaluation.grant,
        "loan": evaluation.loan,
        "loan_gge": evaluation.loan_gge,
        "version": evaluation.version,
    }
    stage = "not_admissible" if refused else "evaluated"
    checks = [dict(c) for c in evaluation.admissibility_checks]
    for c in checks:  # the deferred credit-class check is now settled by the class the merit evaluation gave
        if c["code"] == CREDIT_CLASS_CHECK and c["outcome"] == "deferred":
            c["outcome"] = "pass"
            c["detail_it"], c["detail_en"] = steps[1]["detail_it"], steps[1]["detail_en"]
    evaluation.admissibility_checks = checks
    evaluation.stage = stage
    evaluation.grant, evaluation.loan, evaluation.loan_gge = total_grant, total_loan, total_gge
    evaluation.funding = funding
    evaluation.de_minimis = de_minimis
    if network is not None:
        evaluation.network = network
    evaluation.version += 1
    evaluation.updated_at = datetime.now(UTC)
    await session.flush()
    await record_audit(
        session,
        actor,
        action="evaluation.funding_computed",
        resource_type="evaluation",
        resource_id=evaluation.application_id,
        before=before,
        after={
            "stage": stage,
            "grant": total_grant,
            "loan": total_loan,
            "loan_gge": total_gge,
            "reduced": outcome.reduced,
            "refused": refused,
            "members": members,
            "prior_total": outcome.period.total,
            "version": evaluation.version,
            "network": None
            if network is None
            else [{k: m[k] for k in ("company_id", "grant", "loan", "loan_gge")} for m in network["members"]],
        },
    )
    partner = app.snapshot.get("partner_id")
    await record_event(
        session,
        actor,
        event_type="evaluation.funding_computed",
        subject_type="evaluation",
        subject_id=evaluation.application_id,
        payload={
            "application_id": str(evaluation.application_id),
            "call_id": str(evaluation.call_id),
            "company_id": str(app.company_id),
            "stage": stage,
            "reason": "de_minimis_ceiling" if refused else None,
            "grant": str(total_grant),
            "loan": str(total_loan),
            "loan_gge": str(total_gge),
            "de_minimis_reduced": outcome.reduced,
        },
        partner_id=uuid.UUID(partner) if partner else None,
        company_id=app.company_id,
    )
    return evaluation


async def _members_funding(
    *,
    session: AsyncSession,
    rules: CallRules,
    network: dict[str, Any],
    snapshot: dict[str, Any],
    share: Decimal,
    per_euro: Decimal,
    today: date,
) -> dict[str, Any]:
    """Each network member's aid: the call's rates on its eligible total after the cuts (its aid base capped at
    the call's maximum, the loan cap at the application's credit class), within the de minimis headroom of its
    own single undertaking (the register and its own declaration)."""
    declared = (snapshot.get("network") or {}).get("members") or []
    members = []
    for i, m in enumerate(network["members"]):
        eligible = Decimal(str(m["eligible_total"]))
        aid = compute_aid(rules, eligible, share)
        undertaking = [str(v) for v in m["undertaking"]]
        own = declared_of(declared[i]) if i < len(declared) else []
        prior = everything(await repository.aids_of(session, undertaking), own)
        outcome = dm.cap_new_aid(rules, prior, undertaking, aid.grant, aid.loan, per_euro, grant_date=today)
        grant, loan = (ZERO, ZERO) if outcome.refused else (outcome.allowed_grant, outcome.allowed_loan)
        gge = ZERO if outcome.refused else outcome.allowed_loan_equivalent
        members.append(
            {
                **m,
                "requested_grant": str(aid.grant),
                "requested_loan": str(aid.loan),
                "grant": str(grant),
                "loan": str(loan),
                "loan_gge": str(gge),
                "total_aid": str(grant + loan),
                "de_minimis": {
                    "members": undertaking,
                    "prior_total": str(outcome.period.total),
                    "headroom": str(outcome.headroom),
                    "requested_equivalent": str(outcome.requested_equivalent),
                    "allowed_equivalent": str(outcome.allowed_equivalent),
                    "reduced": outcome.reduced,
                    "refused": outcome.refused,
                },
            }
        )
    return {**network, "members": members}


def network_shares(evaluation: Evaluation | None, grant: Decimal, loan: Decimal) -> list[dict[str, Any]]:
    """How a network application's aid (`grant`, `loan`: the decision's, at most the computed totals) is split
    between the lead (first) and its members, each as its funding computation recorded. When the decision gives
    less than was computed (partly funded), each member's share is cut in the same proportion (floored to the
    cent) and the lead takes the rest."""
    network = evaluation.network if evaluation is not None else None
    if not network or network.get("grant") is None:
        return []
    total_grant, total_loan = Decimal(network["grant"]), Decimal(network["loan"])
    out = []
    for m in network["members"]:
        g, ln = Decimal(m["grant"]), Decimal(m["loan"])
        if total_grant and grant != total_grant:
            g = (g * grant / total_grant).quantize(CENT, rounding=ROUND_FLOOR)
        if total_loan and loan != total_loan:
            ln = (ln * loan / total_loan).quantize(CENT, rounding=ROUND_FLOOR)
        out.append(
            {
                "company_id": m["company_id"],
                "vat_number": m["vat_number"],
                "undertaking": m["undertaking"],
                "grant": g,
                "loan": ln,
            }
        )
    lead = {
        "company_id": network["lead"]["company_id"],
        "grant": grant - sum((m["grant"] for m in out), ZERO),
        "loan": loan - sum((m["loan"] for m in out), ZERO),
    }
    return [lead, *out]


# ---------------------------------------------------------------- the desk's own concessions


def concession_equivalent(*, grant: Decimal, loan: Decimal, evaluation: Evaluation | None) -> Decimal:
    """The gross grant equivalent of a concession: the grant plus the loan's equivalent at the GGE per euro of
    the funding computation (the evaluation's own ``loan_gge`` when the loan is the one computed)."""
    if loan == 0:
        return grant
    if (
        evaluation is not None
        and evaluation.loan_gge is not None
        and evaluation.loan == loan
        and not evaluation.network
    ):  # a network's loan_gge is its total: each company's share is per euro
        return grant + evaluation.loan_gge
    per_euro: Decimal | None = None
    if evaluation is not None and evaluation.funding and evaluation.funding.get("gge_per_euro"):
        per_euro = Decimal(str(evaluation.funding["gge_per_euro"]))
    elif evaluation is not None and evaluation.loan_gge is not None and evaluation.loan:
        per_euro = evaluation.loan_gge / evaluation.loan
    if per_euro is None:
        raise Conflict(
            "Manca il calcolo del finanziamento: l'equivalente sovvenzione lordo non è noto.",
            "The funding computation is missing: the gross grant equivalent is unknown.",
            extra={"reason": "funding_not_computed"},
        )
    return grant + dm.loan_equivalent(loan, per_euro)


async def undertaking_of(*, intake: IntakeClient, evaluation: Evaluation | None, company_id: uuid.UUID) -> list[str]:
    """The single undertaking as the funding computation saw it (applicant first), else as intake says now."""
    if evaluation is not None and evaluation.de_minimis and evaluation.de_minimis.get("members"):
        return [str(v) for v in evaluation.de_minimis["members"]]
    return single_undertaking(await fetch_company(intake, company_id))


async def register_concession(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    rules: CallRules,
    evaluation: Evaluation | None,
    company_id: uuid.UUID,
    application_id: uuid.UUID,
    cor: str,
    granted_on: date,
    grant: Decimal,
    loan: Decimal,
    decree_number: str,
    declared: list[dm.PriorAid],
    undertaking: list[str] | None = None,
) -> PriorAid | None:
    """Enter the desk's concession (grant + the loan's GGE, at the decree's date, reference = its COR) in the
    register, under the lock of the single undertaking; if it would take the undertaking over the ceiling, refuse
    (409 de-minimis-ceiling) and the caller's transaction changes nothing. `undertaking`: a network member's single
    undertaking (member first), as its funding computation saw it; by default the applicant's."""
    amount = concession_equivalent(grant=grant, loan=loan, evaluation=evaluation)
    if amount <= 0:
        return None
    members = undertaking or await undertaking_of(intake=intake, evaluation=evaluation, company_id=company_id)
    await repository.lock_undertaking(session, members)
    prior = everything(await repository.aids_of(session, members), declared)
    period = dm.aid_in_period(rules, prior, members, granted_on)
    ceiling = rules.de_minimis.ceiling
    headroom = max(ZERO, ceiling - period.total)
    if amount > headroom:
        raise DeskError(
            f"La concessione ({eur_it(amount)} di equivalente sovvenzione lordo) supera il margine de minimis "
            f"dell'impresa unica ({eur_it(headroom)}: aiuti nel periodo {eur_it(period.total)}, massimale "
            f"{eur_it(ceiling)}). Il finanziamento va ricalcolato.",
            f"The concession ({eur_en(amount)} of gross grant equivalent) exceeds the single undertaking's de "
            f"minimis headroom ({eur_en(headroom)}: aid in the period {eur_en(period.total)}, ceiling "
            f"{eur_en(ceiling)}). The funding must be recomputed.",
            kind=DE_MINIMIS_CEILING,
            extra={
                "amount": str(amount),
                "prior_total": str(period.total),
                "headroom": str(headroom),
                "ceiling": str(ceiling),
                "members": members,
            },
        )
    row = {
        "id": uuid.uuid4(),
        "vat_number": members[0],
        "granted_on": granted_on,
        "amount": amount,
        "granting_authority": f"{DESK_AUTHORITY} (decreto {decree_number})"[:300],
        "regulation": rules.de_minimis.regulation,
        "source": DESK,
        "reference": cor,
        "created_by": actor.principal.client_id,
    }
    inserted = await repository.insert_aids(session, [row])
    if not inserted:
        raise Conflict(
            f"Una concessione con COR {cor} è già registrata.",
            f"A concession with COR {cor} is already recorded.",
            extra={"reason": "duplicate_cor"},
        )
    await record_audit(
        session,
        actor,
        action="de_minimis.concession_registered",
        resource_type="de_minimis_aid",
        resource_id=inserted[0].id,
        after={
            **{k: row[k] for k in row if k != "id"},
            "application_id": str(application_id),
            "grant": grant,
            "loan": loan,
            "prior_total": period.total,
            "members": members,
        },
    )
    return inserted[0]


async def update_concession(
    *,
    session: AsyncSession,
    actor: Actor,
    application_id: uuid.UUID,
    grant: Decimal,
    loan: Decimal,
    evaluation: Evaluation | None,
    kind: str,
    reason: str,
) -> PriorAid | None:
    """A reduction or revocation of an accepted concession: its register entry takes the aid left (grant + the
    loan's GGE; zero when revoked), so the single undertaking's headroom grows back. A network's aid left is
    split as at the acceptance (`network_shares`): each company's entry (COR, COR/1, ...) takes its share.
    Returns the applicant's (the lead's) entry, None if none was registered."""
    cor = await repository.accepted_cor(session, application_id)
    if cor is None:
        return None
    shares = network_shares(evaluation, grant, loan)
    parts = (
        [(cor, grant, loan)]
        if not shares
        else [(cor if i == 0 else f"{cor}/{i}", s["grant"], s["loan"]) for i, s in enumerate(shares)]
    )
    first: PriorAid | None = None
    for i, (reference, g, ln) in enumerate(parts):
        entry = await repository.desk_aid(session, reference)
        if entry is None:
            continue
        if i == 0:
            first = entry
        amount = concession_equivalent(grant=g, loan=ln, evaluation=evaluation) if g + ln > 0 else ZERO
        if amount == entry.amount:
            continue
        before = {"amount": entry.amount}
        entry.amount = amount
        await session.flush()
        await record_audit(
            session,
            actor,
            action=f"de_minimis.concession_{kind}",
            resource_type="de_minimis_aid",
            resource_id=entry.id,
            before=before,
            after={"amount": amount, "grant": g, "loan": ln, "reason": reason, "application_id": str(application_id)},
        )
    return first


# ---------------------------------------------------------------- the officer's comparison


def _same(d: dict[str, Any], a: PriorAid) -> bool:
    if d.get("reference"):
        return str(d["reference"]) == a.reference
    return (
        dm.normalise_vat(str(d["vat_number"])) == a.vat_number
        and str(d["granted_on"]) == a.granted_on.isoformat()
        and Decimal(str(d["amount"])) == a.amount
    )


async def comparison(
    *, session: AsyncSession, intake: IntakeClient, app: ReceivedApplication, on: date | None
) -> dict[str, Any]:
    """Declared vs RNA vs desk for the application's single undertaking (``ComparisonOut``)."""
    rules = await rules_of_application(intake, app)
    evaluation = await session.get(Evaluation, app.application_id)
    members = await undertaking_of(intake=intake, evaluation=evaluation, company_id=app.company_id)
    day = on or datetime.now(rules.tz).date()
    aids = await repository.aids_of(session, members)
    declarations = list(app.snapshot.get("de_minimis_declarations") or [])
    start = dm.window_start(day, rules.de_minimis.period_years)

    def inside(d: date) -> bool:
        return start <= d <= day

    rna = [a for a in aids if a.source == RNA]
    declared_out = [
        {
            "vat_number": dm.normalise_vat(str(d["vat_number"])),
            "granting_authority": d["granting_authority"],
            "granted_on": d["granted_on"],
            "amount": d["amount"],
            "regulation": d["regulation"],
            "reference": d.get("reference"),
            "in_register": any(_same(d, a) for a in rna),
        }
        for d in declarations
    ]
    register_out = [{**aid_out(a), "declared": any(_same(d, a) for d in declarations)} for a in aids]
    totals = {
        "declared": sum(
            (Decimal(str(d["amount"])) for d in declarations if inside(date.fromisoformat(str(d["granted_on"])))), ZERO
        )
    }
    for name, source in (("rna", RNA), ("manual", MANUAL), ("desk", DESK)):
        totals[name] = sum((a.amount for a in aids if a.source == source and inside(a.granted_on)), ZERO)
    counted = dm.aid_in_period(rules, everything(aids, declared_of(app.snapshot)), members, day).total
    return {
        "application_id": app.application_id,
        "on": day,
        "members": members,
        "window_start": start,
        "window_end": day,
        "ceiling": rules.de_minimis.ceiling,
        "totals_in_period": totals,
        "counted_total": counted,
        "headroom": max(ZERO, rules.de_minimis.ceiling - counted),
        "declared": declared_out,
        "register_entries": register_out,
        "declared_not_in_rna": [
            d for d in declared_out if not d["in_register"] and inside(date.fromisoformat(str(d["granted_on"])))
        ],
        "rna_not_declared": [
            r
            for r, a in zip(register_out, aids, strict=True)
            if a.source == RNA and not r["declared"] and inside(a.granted_on)
        ],
    }
