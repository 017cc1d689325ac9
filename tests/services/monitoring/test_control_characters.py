"""Control characters at monitoring's edge (shared.inputguard): a NUL in a KPI report or a claim line is 422
`validation-error` naming the field, nothing is stored (it answered 500 before); an evidence file's content is
never inspected, whatever bytes it holds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from sqlalchemy import text

from services.monitoring.storage import DiskStorage
from tests.services.monitoring.builders import FakeIntake, make_project, with_plan
from tests.services.monitoring.test_claims import PDF, line_body, reporting_project


def refused(r: Any, path: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "/problems/validation-error"
    assert [(e["code"], e["path"], e["location"]) for e in r.json()["errors"]] == [("control_character", path, "body")]


async def count(session: Any, sql: str, **params: Any) -> int:
    return int((await session.execute(text(sql), params)).scalar_one())


@pytest_asyncio.fixture(loop_scope="session")
async def fake(monitoring_app: Any, tmp_path: Path) -> AsyncIterator[FakeIntake]:
    fake = FakeIntake()
    monitoring_app.state.intake_client = fake
    monitoring_app.state.storage = DiskStorage(tmp_path / "evidence")
    yield fake
    monitoring_app.state.intake_client = None
    monitoring_app.state.storage = None


async def test_kpi_report_with_nul_is_422_and_nothing_is_stored(monitoring_client, session, token_factory):
    project = await make_project(session, partner_id=uuid.uuid4())
    await with_plan(session, project, kpis=[{"name": "Fiere", "baseline": "2.00", "target": "4.00", "unit": "eventi"}])
    partner = await token_factory("partner", partner_id=project.partner_id)
    r = await monitoring_client.post(
        f"/v1/projects/{project.id}/kpi-reports",
        headers=partner,
        json={"kpi": "Fiere", "period": "2026-Q1", "value": "3.00", "note": "Fiera di Hanoi\u0000"},
    )
    refused(r, "/note")
    assert await count(session, "SELECT count(*) FROM monitoring.kpi_reports WHERE project_id = :p", p=project.id) == 0


async def test_claim_line_with_nul_is_422_and_no_line_is_stored(monitoring_client, session, token_factory, fake):
    project = await reporting_project(session, fake)
    company = await token_factory("company", company_id=project.company_id)
    r = await monitoring_client.post(
        f"/v1/projects/{project.id}/claims", json={"kind": "intermediate"}, headers=company
    )
    assert r.status_code == 201, r.text
    claim = r.json()
    r = await monitoring_client.post(
        f"/v1/claims/{claim['id']}/lines",
        json=line_body(supplier_name="Fiere\u0000 e Mercati Esteri S.r.l."),
        headers={**company, "If-Match": '"1"'},
    )
    refused(r, "/supplier_name")
    assert await count(session, "SELECT count(*) FROM monitoring.claim_lines WHERE claim_id = :c", c=claim["id"]) == 0

    # the same line without the NUL is taken, and its evidence (binary, NUL bytes included) is not inspected
    r = await monitoring_client.post(
        f"/v1/claims/{claim['id']}/lines", json=line_body(), headers={**company, "If-Match": '"1"'}
    )
    assert r.status_code == 201, r.text
    line_id = r.json()["id"]
    pdf = PDF.replace(b"%%EOF", b"\x00\x01\x02%%EOF")
    r = await monitoring_client.post(
        f"/v1/claims/{claim['id']}/lines/{line_id}/evidence",
        files={"file": ("fattura.pdf", pdf, "application/pdf")},
        headers=company,
    )
    assert r.status_code == 201, r.text

    # a file's name is text the desk stores: a NUL there is refused like in any other field
    # (by hand: httpx would percent-encode it)
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="fattura\x00.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + PDF + b"\r\n--b0undary--\r\n"
    )
    r = await monitoring_client.post(
        f"/v1/claims/{claim['id']}/lines/{line_id}/evidence",
        content=body,
        headers={**company, "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    refused(r, "/file")
