"""Reporting (rendicontazione) through HTTP: claims, lines, evidence (FatturaPA read), the automatic checks, the
officer's review; and every bad input answered with a problem or a failed check, nothing changed."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select, text

from services.monitoring.models import Claim, ClaimLine, EvidenceFile, Project
from services.monitoring.storage import DiskStorage
from tests.services.monitoring.builders import FakeIntake, make_project

SAMPLE = (Path(__file__).parents[2] / "fixtures" / "fatturapa_sample.xml").read_bytes()
CUP = "E18H25000120007"  # the sample invoice's CodiceCUP
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
SUBMITTED_AT = datetime(2025, 3, 10, 8, 30, tzinfo=UTC)  # 09:30 in Rome
BUDGET = [
    {"dimension": "category", "category": "a", "kind": "direct", "amount": "2000.00"},
    {"dimension": "category", "category": "b", "kind": "direct", "amount": "10000.00"},
    {"dimension": "category", "category": "c", "kind": "direct", "amount": "1000.00"},
    {"dimension": "category", "category": "d", "kind": "flat_rate", "amount": "2600.00"},
    {"dimension": "category", "category": "e", "kind": "flat_rate", "amount": "1092.00"},
    {"dimension": "market", "country": "US", "amount": "9000.00"},
    {"dimension": "market", "country": "VN", "amount": "4000.00"},
]


@dataclass
class Desk:
    client: httpx.AsyncClient
    project: Project
    company: dict[str, str]
    partner: dict[str, str]
    officer: dict[str, str]
    intake: FakeIntake
    storage_dir: Path


@pytest_asyncio.fixture(loop_scope="session")
async def storage(monitoring_app: Any, tmp_path: Path) -> AsyncIterator[Path]:
    monitoring_app.state.storage = DiskStorage(tmp_path / "evidence")
    yield tmp_path / "evidence"
    monitoring_app.state.storage = None


@pytest_asyncio.fixture(loop_scope="session")
async def fake_intake(monitoring_app: Any) -> AsyncIterator[FakeIntake]:
    fake = FakeIntake()
    monitoring_app.state.intake_client = fake
    yield fake
    monitoring_app.state.intake_client = None


async def reporting_project(
    session: Any,
    fake: FakeIntake,
    *,
    cup: str | None = CUP,
    status: str = "active",
    deadline: date = date(2026, 9, 30),
    eligible_total: str = "16692.00",
) -> Project:
    """A project of the seeded call (tolerance 20 %, flat rates d and e) whose application was submitted on
    10 March 2025, approved for a 2000, b 10000, c 1000 (US 9000, VN 4000)."""
    p = await make_project(
        session,
        cup=cup,
        status=status,
        partner_id=uuid.uuid4(),
        deadline=deadline,
        eligible_total=eligible_total,
        grant="3338.40",
        loan="10850.00",
    )
    p.approved_budget = BUDGET
    p.start_date = date(2025, 3, 10)
    await session.flush()
    fake.add_call(p.call_id)
    fake.add_application(p.application_id, "Export plan")
    fake.applications[p.application_id].submitted_at = SUBMITTED_AT
    return p


@pytest_asyncio.fixture(loop_scope="session")
async def desk(
    monitoring_client: httpx.AsyncClient,
    session: Any,
    token_factory: Any,
    officer: dict[str, str],
    fake_intake: FakeIntake,
    storage: Path,
) -> Desk:
    p = await reporting_project(session, fake_intake)
    return Desk(
        monitoring_client,
        p,
        await token_factory("company", company_id=p.company_id),
        await token_factory("partner", partner_id=p.partner_id),
        officer,
        fake_intake,
        storage,
    )


def line_body(**kw: Any) -> dict[str, Any]:
    body = {
        "kind": "invoice",
        "supplier_vat": "IT01234560157",
        "supplier_name": "Fiere e Mercati Esteri S.r.l.",
        "document_number": "2025/0147",
        "issue_date": "2025-04-15",
        "taxable_amount": "4000.00",
        "category": "b",
        "market": "VN",
        "payment_date": "2025-05-10",
        "payment_method": "bank_transfer",
    }
    body.update(kw)
    return body


async def open_claim(d: Desk, kind: str = "intermediate", headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = await d.client.post(f"/v1/projects/{d.project.id}/claims", json={"kind": kind}, headers=headers or d.company)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == '"1"'
    return dict(r.json())


async def add_line(d: Desk, claim_id: str, **kw: Any) -> httpx.Response:
    etag = (await d.client.get(f"/v1/claims/{claim_id}", headers=d.company)).headers["etag"]
    return await d.client.post(
        f"/v1/claims/{claim_id}/lines", json=line_body(**kw), headers={**d.company, "If-Match": etag}
    )


async def upload(
    d: Desk, claim_id: str, line_id: str, data: bytes, filename: str = "fattura.pdf", ctype: str = "application/pdf"
) -> httpx.Response:
    return await d.client.post(
        f"/v1/claims/{claim_id}/lines/{line_id}/evidence", files={"file": (filename, data, ctype)}, headers=d.company
    )


async def etag(d: Desk, claim_id: str) -> str:
    return (await d.client.get(f"/v1/claims/{claim_id}", headers=d.company)).headers["etag"]


async def submit(d: Desk, claim_id: str) -> httpx.Response:
    return await d.client.post(
        f"/v1/claims/{claim_id}/submit", headers={**d.company, "If-Match": await etag(d, claim_id)}
    )


async def review(d: Desk, claim_id: str, line_id: str, outcome: str, amount: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"outcome": outcome, "note": "verificato"}
    if amount is not None:
        body["recognised_amount"] = amount
    return await d.client.put(
        f"/v1/claims/{claim_id}/lines/{line_id}/review",
        json=body,
        headers={**d.officer, "If-Match": await etag(d, claim_id)},
    )


async def complete(d: Desk, claim_id: str) -> httpx.Response:
    return await d.client.post(
        f"/v1/claims/{claim_id}/review/complete", headers={**d.officer, "If-Match": await etag(d, claim_id)}
    )


def checks_of(line: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code"]: c for c in line["checks"]}


async def outbox(session: Any, event_type: str, aggregate_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT payload FROM desk.outbox WHERE event_type = :t AND aggregate_id = :a"),
        {"t": event_type, "a": aggregate_id},
    )
    return [r[0] for r in rows]


async def count(session: Any, model: Any, *where: Any) -> int:
    return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


# ---------------------------------------------------------------- the normal path


async def test_a_claim_with_an_e_invoice_and_a_pdf_is_checked_reviewed_and_recognised(desk: Desk, session: Any) -> None:
    d = desk
    claim = await open_claim(d)
    assert claim["status"] == "draft" and claim["lines"] == []
    cid = claim["id"]

    r = await add_line(d, cid)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == '"2"'
    xml_line = r.json()
    assert xml_line["supplier_vat"] == "01234560157"  # the IT prefix is not part of an Italian VAT number
    r = await upload(d, cid, xml_line["id"], SAMPLE, "IT01234560157_00147.xml", "text/xml")
    assert r.status_code == 201, r.text
    ev = r.json()
    assert ev["media_type"] == "application/xml"
    assert ev["sha256"] == hashlib.sha256(SAMPLE).hexdigest()
    inv = ev["invoice_data"]
    assert (inv["supplier_vat"], inv["number"], inv["issue_date"], inv["taxable_amount"], inv["cup_found"]) == (
        "01234560157",
        "2025/0147",
        "2025-04-15",
        "4000.00",
        True,
    )
    sha = ev["sha256"]
    assert (d.storage_dir / sha[:2] / sha[2:4] / sha).read_bytes() == SAMPLE

    r = await add_line(
        d,
        cid,
        supplier_vat="DE136695976",
        supplier_name="Messe GmbH",
        document_number="ms 88",
        issue_date="2025-05-02",
        taxable_amount="1500.00",
        category="a",
        market="US",
        payment_method="card",
        payment_date="2025-05-02",
        cup_quoted=True,
    )
    assert r.status_code == 201, r.text
    pdf_line = r.json()
    assert (pdf_line["supplier_vat"], pdf_line["document_number"]) == ("DE136695976", "MS88")
    assert (await upload(d, cid, pdf_line["id"], PDF)).status_code == 201

    r = await submit(d, cid)
    assert r.status_code == 200, r.text
    sub = r.json()
    assert sub["status"] == "submitted" and sub["submitted_at"]
    assert sub["claimed_total"] == "5500.00"
    lines = {ln["id"]: ln for ln in sub["lines"]}
    xml_checks = checks_of(lines[xml_line["id"]])
    assert {c["outcome"] for c in xml_checks.values()} == {"pass"}, xml_checks
    pdf_checks = checks_of(lines[pdf_line["id"]])
    assert pdf_checks["cup_quoted"]["outcome"] == "needs_review"  # declared on a PDF: the officer verifies it
    assert pdf_checks["evidence_matches"]["outcome"] == "needs_review"
    assert pdf_checks["payment_traceable"]["outcome"] == "pass"
    assert sub["review"]["submission"]["claimed_total"] == "5500.00"
    [event] = await outbox(session, "claim.submitted", cid)
    assert event["claimed_total"] == "5500.00" and event["lines"] == 2
    # nothing changes after submission
    r = await add_line(d, cid, document_number="X-1")
    assert r.status_code == 409

    assert (await review(d, cid, xml_line["id"], "recognised")).status_code == 200
    r = await review(d, cid, pdf_line["id"], "partially", "1000.00")
    assert r.status_code == 200, r.text
    assert r.json()["recognised_amount"] == "1000.00"
    r = await complete(d, cid)
    assert r.status_code == 200, r.text
    done = r.json()
    # a is capped at 20 % of (b + c) = 800; flat rates recomputed: d = 20 % of 4800, e = 7 % of 5760
    assert done["status"] == "partially_approved"
    assert done["recognised_total"] == "6163.20"
    assert done["review"]["review"]["flat_rates"] == {"d": "960.00", "e": "403.20"}
    [event] = await outbox(session, "claim.reviewed", cid)
    assert event["recognised_total"] == "6163.20" and event["status"] == "partially_approved"
    audits = (
        (await session.execute(text("SELECT action FROM desk.audit_log WHERE resource_id = :r"), {"r": cid}))
        .scalars()
        .all()
    )
    assert {"claim.created", "claim.line_added", "claim.submitted", "claim.line_reviewed", "claim.reviewed"} <= set(
        audits
    )

    r = await d.client.get(f"/v1/evidence/{ev['id']}", headers=d.partner)
    assert r.status_code == 200
    assert r.content == SAMPLE
    assert r.headers["content-type"].startswith("application/xml")
    listed = await d.client.get(f"/v1/projects/{d.project.id}/claims", headers=d.officer)
    assert [c["id"] for c in listed.json()["items"]] == [cid]


async def test_one_draft_claim_per_project_and_a_retried_create_is_replayed(desk: Desk, session: Any) -> None:
    d = desk
    url = f"/v1/projects/{d.project.id}/claims"
    headers = {**d.partner, "Idempotency-Key": "claim-1"}
    first = await d.client.post(url, json={"kind": "intermediate"}, headers=headers)
    again = await d.client.post(url, json={"kind": "intermediate"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true" and again.json()["id"] == first.json()["id"]
    r = await d.client.post(url, json={"kind": "final"}, headers=d.company)
    assert r.status_code == 409
    assert r.json()["claim_id"] == first.json()["id"]
    assert await count(session, Claim, Claim.project_id == d.project.id) == 1


async def test_no_claim_on_a_revoked_project(desk: Desk, session: Any, token_factory: Any) -> None:
    p = await reporting_project(session, desk.intake, cup=None, status="revoked")
    company = await token_factory("company", company_id=p.company_id)
    r = await desk.client.post(f"/v1/projects/{p.id}/claims", json={"kind": "final"}, headers=company)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["project_status"] == "revoked"
    assert await count(session, Claim, Claim.project_id == p.id) == 0


# ---------------------------------------------------------------- bad input: problems, nothing changed


async def test_the_same_invoice_cannot_be_claimed_twice_even_across_projects_and_calls(
    desk: Desk, session: Any, token_factory: Any
) -> None:
    d = desk
    cid = (await open_claim(d))["id"]
    assert (await add_line(d, cid)).status_code == 201
    tag = await etag(d, cid)
    again = await add_line(d, cid, taxable_amount="10.00", document_number="2025 / 0147")  # same, spaced out
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/invoice-already-claimed"
    assert await etag(d, cid) == tag

    other = await reporting_project(session, d.intake, cup=None)  # another project of another call
    assert other.call_id != d.project.call_id
    o = Desk(
        d.client,
        other,
        await token_factory("company", company_id=other.company_id),
        d.partner,
        d.officer,
        d.intake,
        d.storage_dir,
    )
    ocid = (await open_claim(o))["id"]
    r = await add_line(o, ocid)
    assert r.status_code == 409
    assert r.json()["type"] == "/problems/invoice-already-claimed"
    assert await count(session, ClaimLine, ClaimLine.project_id == other.id) == 0
    assert await etag(o, ocid) == '"1"'
    # another invoice of the same supplier is fine
    assert (await add_line(o, ocid, document_number="2025/0148")).status_code == 201


async def test_an_invoice_dated_before_the_submission_fails_its_check_and_cannot_be_recognised(desk: Desk) -> None:
    d = desk
    cid = (await open_claim(d))["id"]
    line = (await add_line(d, cid, issue_date="2025-03-09", payment_date="2025-03-09")).json()
    assert (await upload(d, cid, line["id"], PDF)).status_code == 201
    r = await submit(d, cid)
    assert r.status_code == 200
    checks = checks_of(r.json()["lines"][0])
    assert checks["issue_date_after_submission"]["outcome"] == "fail"
    assert checks["issue_date_after_submission"]["blocking"] is True
    assert checks["issue_date_after_submission"]["details"]["submitted_on"] == "2025-03-10"
    tag = await etag(d, cid)
    r = await review(d, cid, line["id"], "recognised")
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "line_not_recognisable"
    assert await etag(d, cid) == tag
    assert (await review(d, cid, line["id"], "rejected")).status_code == 200
    done = (await complete(d, cid)).json()
    assert (done["status"], done["recognised_total"]) == ("rejected", "0.00")


async def test_a_cash_payment_fails_the_traceability_check(desk: Desk) -> None:
    d = desk
    cid = (await open_claim(d))["id"]
    line = (await add_line(d, cid, payment_method="cash")).json()
    await upload(d, cid, line["id"], SAMPLE, "f.xml", "application/xml")
    sub = (await submit(d, cid)).json()
    c = checks_of(sub["lines"][0])["payment_traceable"]
    assert (c["outcome"], c["blocking"], c["path"], c["article"]) == ("fail", True, None, None)
    assert c["message"] == c["message_it"] != c["message_en"]  # Italian by default
    assert sub["review"]["submission"]["admissible_total"] == "0.00"
    assert (await review(d, cid, line["id"], "partially", "100.00")).status_code == 422


async def test_a_file_that_is_not_what_its_type_says_is_refused(desk: Desk, session: Any) -> None:
    d = desk
    cid = (await open_claim(d))["id"]
    lid = (await add_line(d, cid)).json()["id"]
    r = await upload(d, cid, lid, PNG, "fattura.pdf", "application/pdf")
    assert r.status_code == 422
    assert r.json()["type"] == "/problems/evidence-type-mismatch"
    assert r.json()["detected"] == "image/png"
    r = await upload(d, cid, lid, PDF, "scan.png", "application/octet-stream")  # the extension lies
    assert r.status_code == 422
    r = await upload(d, cid, lid, b"MZ\x90\x00\x03" + b"\x00" * 60, "fattura.pdf", "application/pdf")
    assert r.status_code == 415
    assert r.json()["type"] == "/problems/evidence-type-not-allowed"
    r = await upload(
        d, cid, lid, b"0\x82\x12\x34\x06\x09*\x86H\x86\xf7\r\x01\x07\x02", "f.xml.p7m", "application/pkcs7-mime"
    )
    assert r.status_code == 415
    assert ".p7m" in r.json()["detail"]
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE FatturaElettronica [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b"<FatturaElettronica>&c;</FatturaElettronica>"
    )
    r = await upload(d, cid, lid, bomb, "f.xml", "application/xml")
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "fatturapa_unsafe"
    assert await count(session, EvidenceFile, EvidenceFile.claim_line_id == uuid.UUID(lid)) == 0
    assert not d.storage_dir.exists() or not any(d.storage_dir.rglob("*"))


async def test_an_oversized_file_gets_413(
    desk: Desk, monitoring_app: Any, monkeypatch: pytest.MonkeyPatch, session: Any
) -> None:
    d = desk
    cid = (await open_claim(d))["id"]
    lid = (await add_line(d, cid)).json()["id"]
    monkeypatch.setattr(monitoring_app.state.settings, "evidence_max_bytes", 1024)
    r = await upload(d, cid, lid, PDF + b"\x00" * 1024)
    assert r.status_code == 413
    assert r.json()["max_bytes"] == 1024
    assert (await upload(d, cid, lid, PDF)).status_code == 201  # within the limit
    monkeypatch.undo()
    # beyond the route's body limit the request is refused before it is read
    r = await upload(d, cid, lid, PDF + b"\x00" * (monitoring_app.state.settings.evidence_max_bytes + 70_000))
    assert r.status_code == 413
    assert await count(session, EvidenceFile, EvidenceFile.claim_line_id == uuid.UUID(lid)) == 1


async def test_amounts_that_do_not_add_up_are_refused(desk: Desk, session: Any) -> None:
    d = desk
    cid = (await open_claim(d))["id"]
    line = (await add_line(d, cid)).json()
    await upload(d, cid, line["id"], SAMPLE, "f.xml", "text/xml")
    assert (await submit(d, cid)).status_code == 200
    tag = await etag(d, cid)
    for outcome, amount, code in [
        ("partially", "4000.01", "recognised_amount_exceeds_taxable"),
        ("recognised", "4500.00", "recognised_amount_exceeds_taxable"),
        ("recognised", "3000.00", "recognised_amount_mismatch"),
        ("partially", None, "recognised_amount_invalid"),
        ("rejected", "5.00", "recognised_amount_on_rejection"),
    ]:
        r = await review(d, cid, line["id"], outcome, amount)
        assert r.status_code == 422, (outcome, amount)
        assert r.json()["errors"][0]["code"] == code
    assert await etag(d, cid) == tag
    row = (
        await session.execute(
            select(ClaimLine).where(ClaimLine.id == uuid.UUID(line["id"])).execution_options(populate_existing=True)
        )
    ).scalar_one()
    assert (row.outcome, row.recognised_amount) == ("pending", None)
    r = await complete(d, cid)
    assert r.status_code == 409
    assert r.json()["pending_lines"] == [line["id"]]


async def test_line_input_is_validated(desk: Desk) -> None:
    d = desk
    cid = (await open_claim(d))["id"]
    cases = [
        ({"category": "d"}, "category_not_approved"),  # a flat rate is computed, never claimed
        ({"category": "z"}, "category_not_approved"),
        ({"supplier_vat": "01234560158"}, "vat_number_invalid"),
        ({"supplier_vat": "DE136695977"}, "vat_number_invalid"),
        ({"taxable_amount": 100.5}, "money_not_string"),
        ({"taxable_amount": "0.00"}, "greater_than"),
        ({"payment_method": "barter"}, "literal_error"),
        ({"market": "XX"}, "country_unknown"),
    ]
    for change, code in cases:
        r = await add_line(d, cid, **change)
        assert r.status_code == 422, change
        assert code in [e["code"] for e in r.json()["errors"]], r.json()
    assert await etag(d, cid) == '"1"'
    r = await add_line(d, cid, kind="payslip", supplier_vat="RSSMRA80A01F205X", document_number="CED-2025-04")
    assert r.status_code == 201, r.text
    r = await add_line(d, cid, supplier_vat="US 12-3456789", document_number="INV-9")  # outside the EU: no checksum
    assert r.status_code == 201
    assert r.json()["supplier_vat"] == "US123456789"


async def test_if_match_is_required_and_a_stale_one_refused(desk: Desk) -> None:
    d = desk
    cid = (await open_claim(d))["id"]
    url = f"/v1/claims/{cid}/lines"
    assert (await d.client.post(url, json=line_body(), headers=d.company)).status_code == 428
    assert (await d.client.post(url, json=line_body(), headers={**d.company, "If-Match": '"9"'})).status_code == 412
    line = (await add_line(d, cid)).json()
    r = await d.client.delete(f"{url}/{line['id']}", headers={**d.company, "If-Match": '"1"'})
    assert r.status_code == 412
    r = await d.client.delete(f"{url}/{line['id']}", headers={**d.company, "If-Match": '"2"'})
    assert r.status_code == 204 and r.headers["etag"] == '"3"'
    detail = (await d.client.get(f"/v1/claims/{cid}", headers=d.company)).json()
    assert detail["lines"] == [] and detail["claimed_total"] == "0.00"


async def test_a_claim_needs_a_line_with_evidence_to_be_submitted(desk: Desk) -> None:
    d = desk
    cid = (await open_claim(d))["id"]
    assert (await submit(d, cid)).status_code == 422
    await add_line(d, cid)
    r = await submit(d, cid)
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "claim_without_evidence"
    assert (await d.client.get(f"/v1/claims/{cid}", headers=d.company)).json()["status"] == "draft"


async def test_who_may_do_what(desk: Desk, token_factory: Any) -> None:
    d = desk
    cid = (await open_claim(d, headers=d.partner))["id"]
    line = (await add_line(d, cid)).json()
    ev = (await upload(d, cid, line["id"], PDF)).json()
    stranger = await token_factory("company", company_id=uuid.uuid4())
    other_partner = await token_factory("partner", partner_id=uuid.uuid4())
    for h in (stranger, other_partner):
        assert (await d.client.get(f"/v1/claims/{cid}", headers=h)).status_code == 404
        assert (await d.client.get(f"/v1/evidence/{ev['id']}", headers=h)).status_code == 404
        assert (await d.client.get(f"/v1/projects/{d.project.id}/claims", headers=h)).status_code == 404
        r = await d.client.post(f"/v1/projects/{d.project.id}/claims", json={"kind": "final"}, headers=h)
        assert r.status_code == 404
    r = await d.client.post(
        f"/v1/claims/{cid}/lines",
        json=line_body(document_number="9"),
        headers={**d.officer, "If-Match": await etag(d, cid)},
    )
    assert r.status_code == 403
    r = await d.client.put(
        f"/v1/claims/{cid}/lines/{line['id']}/review",
        json={"outcome": "rejected"},
        headers={**d.company, "If-Match": await etag(d, cid)},
    )
    assert r.status_code == 403
    assert (await d.client.get(f"/v1/claims/{cid}", headers=d.officer)).status_code == 200


async def test_the_excess_over_the_approved_budget_is_cut_at_review(desk: Desk) -> None:
    d = desk
    cid = (await open_claim(d))["id"]
    line = (await add_line(d, cid, taxable_amount="13000.00", market=None)).json()
    await upload(d, cid, line["id"], PDF)
    sub = (await submit(d, cid)).json()
    amount = checks_of(sub["lines"][0])["amount_within_budget"]
    assert amount["outcome"] == "fail"
    assert (amount["details"]["admissible_amount"], amount["details"]["cut"]) == ("12000.00", "1000.00")
    assert (await review(d, cid, line["id"], "recognised")).status_code == 200
    done = (await complete(d, cid)).json()
    # b: 10000 + 20 % = 12000; d = 2400; e = 7 % of 14400 = 1008
    assert done["recognised_total"] == "15408.00"
    assert done["review"]["review"]["cut_over_budget"] == "1000.00"
    assert done["status"] == "partially_approved"


class _Evaluation:
    """Monitoring's evaluation client where a full outcome releases nothing (it must not be called)."""

    async def release_budget(self, *a: Any, **kw: Any) -> Any:
        raise AssertionError("nothing to release on full aid")


async def test_a_reviewed_final_claim_decides_the_projects_outcome(
    monitoring_client: httpx.AsyncClient,
    monitoring_app: Any,
    session: Any,
    token_factory: Any,
    officer: dict[str, str],
    fake_intake: FakeIntake,
    storage: Path,
) -> None:
    p = await reporting_project(session, fake_intake, deadline=date.today() + timedelta(days=60))
    d = Desk(
        monitoring_client, p, await token_factory("company", company_id=p.company_id), {}, officer, fake_intake, storage
    )
    monitoring_app.state.evaluation_client = _Evaluation()
    try:
        cid = (await open_claim(d, "final"))["id"]
        ids = [
            (await add_line(d, cid, **kw)).json()["id"]
            for kw in (
                {"taxable_amount": "10000.00", "market": "US"},
                {"document_number": "A-1", "category": "a", "taxable_amount": "2000.00"},
                {"document_number": "C-1", "category": "c", "taxable_amount": "1000.00"},
            )
        ]
        await upload(d, cid, ids[0], PDF)
        assert (await submit(d, cid)).status_code == 200
        for lid in ids:
            assert (await review(d, cid, lid, "recognised")).status_code == 200
        r = await complete(d, cid)
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["recognised_total"]) == ("approved", "16692.00")
    finally:
        monitoring_app.state.evaluation_client = None
    row = (
        await session.execute(select(Project).where(Project.id == p.id).execution_options(populate_existing=True))
    ).scalar_one()
    assert row.status == "completed"
    assert row.final_grant == p.grant
    assert len(await outbox(session, "project.completed", str(p.id))) == 1
    r = await monitoring_client.post(f"/v1/projects/{p.id}/claims", json={"kind": "intermediate"}, headers=d.company)
    assert r.status_code == 409  # the project is completed


async def test_an_upload_with_an_idempotency_key_is_replayed_not_a_500(desk: Desk) -> None:
    """A multipart upload is parsed before the idempotency key is checked: the key binds the parsed form (the
    file's name, type and SHA-256), so a retry replays the first answer and another file under the key is 422."""
    claim = await open_claim(desk)
    line = (await add_line(desk, claim["id"])).json()
    url = f"/v1/claims/{claim['id']}/lines/{line['id']}/evidence"
    headers = {**desk.company, "Idempotency-Key": f"upload-{uuid.uuid4().hex}"}
    first = await desk.client.post(url, files={"file": ("fattura.pdf", PDF, "application/pdf")}, headers=headers)
    assert first.status_code == 201, first.text
    again = await desk.client.post(url, files={"file": ("fattura.pdf", PDF, "application/pdf")}, headers=headers)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"], again.text
    other = await desk.client.post(url, files={"file": ("altra.pdf", PDF + b" ", "application/pdf")}, headers=headers)
    assert other.status_code == 422, other.text
