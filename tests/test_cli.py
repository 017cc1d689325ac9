"""The `desk` command line, in process (typer's CliRunner) against the test database.

These tests run synchronously: each command runs its own event loop and commits, like the real CLI.
Their rows are unique (random names and codes) so they cannot disturb the rolled-back API tests."""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from argon2 import PasswordHasher
from sqlalchemy.engine import make_url
from stdnum import luhn
from typer.testing import CliRunner

from desk.cli import app
from shared.db import plain_url
from tests.conftest import CALL_FILE

runner = CliRunner()


@pytest.fixture
def desk_db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the CLI at the test database, as an operator would with DATABASE_URL."""
    monkeypatch.setenv("DESK_DATABASE_URL", database_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


def _fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(plain_url(url))
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def _random_fiscal_code() -> str:
    """An entity's codice fiscale: 11 digits, digits 8-10 a provincial office (001-100), a Luhn check digit."""
    body = f"{random.randrange(10**7):07d}{random.randint(1, 100):03d}"
    return body + luhn.calc_check_digit(body)


def test_openapi_check_passes_on_the_committed_documents() -> None:
    result = runner.invoke(app, ["openapi", "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_openapi_check_fails_and_names_the_stale_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import desk.cli

    for service in desk.cli.SERVICES:
        (tmp_path / f"{service}.json").write_text(desk.cli.render_openapi(service))
    (tmp_path / "evaluation.json").write_text("{}\n")
    monkeypatch.setattr(desk.cli, "OPENAPI_DIR", tmp_path)
    result = runner.invoke(app, ["openapi", "--check"])
    assert result.exit_code == 1
    assert "evaluation.json" in result.output and "intake.json" not in result.output
    # without --check it rewrites the stale file
    assert runner.invoke(app, ["openapi"]).exit_code == 0
    assert (tmp_path / "evaluation.json").read_text() == desk.cli.render_openapi("evaluation")


def test_create_client_prints_credentials_that_are_stored_hashed(desk_db: str) -> None:
    name = f"cli officer {uuid.uuid4().hex[:8]}"
    result = runner.invoke(app, ["create-client", "--kind", "officer", "--name", name, "--json"])
    assert result.exit_code == 0, result.output
    creds = json.loads(result.stdout)
    assert creds["kind"] == "officer" and "intake:admin" in creds["scopes"]
    rows = _fetch(
        desk_db, "SELECT kind, name, secret_hash, active FROM desk.api_clients WHERE client_id = $1", creds["client_id"]
    )
    assert len(rows) == 1 and rows[0]["kind"] == "officer" and rows[0]["name"] == name and rows[0]["active"]
    assert creds["client_secret"] not in rows[0]["secret_hash"]
    assert PasswordHasher().verify(rows[0]["secret_hash"], creds["client_secret"])
    audit = _fetch(desk_db, "SELECT action FROM desk.audit_log WHERE resource_id = $1", creds["client_id"])
    assert [r["action"] for r in audit] == ["api_client.created"]


def test_create_client_for_a_partner_needs_an_existing_partner(desk_db: str) -> None:
    result = runner.invoke(app, ["create-client", "--kind", "partner", "--name", "p"])
    assert result.exit_code == 2 and "--partner-id" in result.output
    result = runner.invoke(
        app, ["create-client", "--kind", "partner", "--name", "p", "--partner-id", str(uuid.uuid4())]
    )
    assert result.exit_code == 1 and "no such partner" in result.output


def test_create_partner_registers_it_and_issues_a_partner_client(desk_db: str) -> None:
    code = _random_fiscal_code()
    result = runner.invoke(
        app,
        [
            "create-partner",
            "--name",
            "Camera di Commercio di Prova",
            "--fiscal-code",
            code,
            "--kind",
            "chamber_of_commerce",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    partner = _fetch(desk_db, "SELECT id, kind FROM intake.partners WHERE fiscal_code = $1", code)
    assert len(partner) == 1 and str(partner[0]["id"]) == out["partner_id"]
    assert partner[0]["kind"] == "chamber_of_commerce"
    client = _fetch(desk_db, "SELECT kind, partner_id FROM desk.api_clients WHERE client_id = $1", out["client_id"])
    assert client[0]["kind"] == "partner" and str(client[0]["partner_id"]) == out["partner_id"]

    # a second client for the same partner, through create-client
    again = runner.invoke(
        app, ["create-client", "--kind", "partner", "--name", "second", "--partner-id", out["partner_id"], "--json"]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["client_id"] != out["client_id"]

    # the fiscal code is unique, and validated
    dup = runner.invoke(app, ["create-partner", "--name", "Twin", "--fiscal-code", code, "--kind", "agency"])
    assert dup.exit_code == 1 and code in dup.output
    bad = runner.invoke(app, ["create-partner", "--name", "Bad", "--fiscal-code", "123", "--kind", "agency"])
    assert bad.exit_code == 2 and "fiscal_code" in bad.output


@pytest.fixture
def fresh_db(monkeypatch: pytest.MonkeyPatch, server_url: str) -> Iterator[str]:
    """An empty database of its own: `migrate` and `seed` commit a call, which the shared one must not hold."""
    server = server_url
    name = f"desk_cli_{os.getpid()}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(plain_url(server))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("DESK_DATABASE_URL", url)
    yield url
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_migrate_then_seed_is_idempotent_and_opens_the_demo_window(fresh_db: str) -> None:
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert _fetch(fresh_db, "SELECT version_num FROM desk.alembic_version")

    result = runner.invoke(app, ["seed", "--no-open-now", "--file", str(CALL_FILE)])
    assert result.exit_code == 0, result.output
    rows = _fetch(fresh_db, "SELECT code, demo_opens_at FROM intake.calls")
    assert len(rows) == 1 and rows[0]["demo_opens_at"] is None

    result = runner.invoke(app, ["seed", "--open-now"])
    assert result.exit_code == 0, result.output
    assert ": open," in result.output
    rows = _fetch(fresh_db, "SELECT code, demo_opens_at, demo_closes_at FROM intake.calls")
    assert len(rows) == 1 and rows[0]["code"] in result.output
    assert (rows[0]["demo_closes_at"] - rows[0]["demo_opens_at"]).days == 90

    # seeding again changes nothing: same call, same demo window
    assert runner.invoke(app, ["seed", "--open-now"]).exit_code == 0
    again = _fetch(fresh_db, "SELECT demo_opens_at FROM intake.calls")
    assert len(again) == 1 and again[0]["demo_opens_at"] == rows[0]["demo_opens_at"]


def test_precheck_reports_the_drafts_of_the_live_calls_and_refuses_an_unknown_call(fresh_db: str) -> None:
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    assert runner.invoke(app, ["seed", "--open-now"]).exit_code == 0
    result = runner.invoke(app, ["precheck"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["calls"] == 1 and out["drafts"] == 0 and out["submittable"] == 0
    result = runner.invoke(app, ["precheck", "--call", "NO-SUCH-CALL"])
    assert result.exit_code == 1 and "no call with code NO-SUCH-CALL" in result.output


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.output.startswith("regional-desk ")


def test_example_bodies_are_valid_requests() -> None:
    """The README's walkthrough posts these: they must pass the API's own validation."""
    import json
    import uuid

    from typer.testing import CliRunner

    from desk.cli import app
    from services.intake.applications.schemas import ApplicationCreate
    from services.intake.companies.schemas import CompanyIn

    runner = CliRunner()
    company = runner.invoke(app, ["example", "company"])
    assert company.exit_code == 0, company.output
    CompanyIn.model_validate(json.loads(company.output))
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    draft = runner.invoke(app, ["example", "application", "--call-id", ids[0], "--company-id", ids[1]])
    assert draft.exit_code == 0, draft.output
    body = ApplicationCreate.model_validate(json.loads(draft.output))
    assert [str(body.call_id), str(body.company_id)] == ids and len(body.expense_lines) == 4
