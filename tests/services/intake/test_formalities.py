"""The application's formalities through HTTP on real PostgreSQL (issue 15 §4): the stamp duty declared once per
application, the form rendered as a deterministic PDF after submission, and the legal representative's PAdES
signature verified against a test CA generated here. Every refusal is its own problem and changes nothing."""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sqlalchemy import text

from services.intake.applications.form import render_pdf
from shared.db import make_sessionmaker
from tests.conftest import make_token
from tests.factories import delegate, draft_body, make_company, make_partner, open_call

LEGAL_REPRESENTATIVE = "RSSMRA80A01F205X"
SOMEONE_ELSE = "BNCLCU85C41H501Z"


# ---------------------------------------------------------------- a test CA and its signers


def _name(common_name: str, serial: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if serial:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


@dataclass
class SigningCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    pem_path: Path

    def issue(self, fiscal_code: str) -> signers.SimpleSigner:
        """A signer whose certificate, issued by this CA, names `fiscal_code` as TINIT-<code> (ETSI EN 319 412-1)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"Firmatario {fiscal_code}", f"TINIT-{fiscal_code}"))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        ca = asn1_x509.Certificate.load(self.cert.public_bytes(serialization.Encoding.DER))
        return signers.SimpleSigner(
            signing_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
            signing_key=asn1_keys.PrivateKeyInfo.load(
                key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            ),
            cert_registry=SimpleCertificateStore.from_certs([ca]),
        )


def make_ca(folder: Path) -> SigningCA:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = _name("Test Qualified CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=10))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / "trust-roots.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return SigningCA(key, cert, path)


async def sign(pdf: bytes, signer: signers.SimpleSigner) -> bytes:
    """A PAdES signature added to `pdf` as an incremental update, as a legal representative's signing tool does."""
    out = await signers.async_sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf)),
        signers.PdfSignatureMetadata(field_name="FirmaLegaleRappresentante", subfilter=fields.SigSeedSubFilter.PADES),
        signer=signer,
    )
    return out.getvalue()


# ---------------------------------------------------------------- the world


@dataclass
class World:
    call: Any
    company: Any
    headers: dict[str, str]
    ca: SigningCA


@pytest.fixture
async def world(session, intake_app, tmp_path, monkeypatch) -> World:
    call = await open_call(session)
    partner = await make_partner(session)
    company = await make_company(session, legal_representative_fiscal_code=LEGAL_REPRESENTATIVE)
    await delegate(session, partner, company)
    headers = await make_token(session, "partner", partner_id=partner.id)
    ca = make_ca(tmp_path)
    monkeypatch.setattr(intake_app.state.settings, "signature_trust_roots", [ca.pem_path])
    return World(call, company, headers, ca)


def stamp(identifier: str | None = None) -> dict[str, str]:
    return {"identifier": identifier or f"{uuid.uuid4().int % 10**14:014d}", "issued_on": "2026-11-30"}


async def submitted(client, w: World, stamp_id: str | None = None) -> tuple[str, dict[str, Any]]:
    r = await client.post("/v1/applications", json=draft_body(w.call.id, w.company.id), headers=w.headers)
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    r = await client.put(f"/v1/applications/{app_id}/stamp-duty", json=stamp(stamp_id), headers=w.headers)
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/applications/{app_id}/submit", headers=w.headers)
    assert r.status_code == 201, r.text
    return app_id, r.json()["receipt"]


async def form(client, w: World, app_id: str) -> bytes:
    r = await client.get(f"/v1/applications/{app_id}/form.pdf", headers=w.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    return r.content


async def upload(client, w: World, app_id: str, pdf: bytes, key: str | None = None) -> Any:
    headers = {**w.headers, "Content-Type": "application/pdf"} | ({"Idempotency-Key": key} if key else {})
    return await client.post(f"/v1/applications/{app_id}/signed-form", content=pdf, headers=headers)


async def unchanged(client, session, w: World, app_id: str) -> None:
    """A refusal leaves no trace: no signed form, no form_signed_at, no audit record, no event."""
    assert (await client.get(f"/v1/applications/{app_id}/signed-form", headers=w.headers)).status_code == 404
    got = (await client.get(f"/v1/applications/{app_id}", headers=w.headers)).json()
    assert got["form_signed_at"] is None
    events = await session.execute(
        text("SELECT count(*) FROM desk.outbox WHERE aggregate_id = :a AND event_type = 'application.form_signed'"),
        {"a": app_id},
    )
    audits = await session.execute(
        text("SELECT count(*) FROM desk.audit_log WHERE resource_id = :a AND action = 'application.form_signed'"),
        {"a": app_id},
    )
    assert events.scalar_one() == 0 and audits.scalar_one() == 0


def shown(line: str) -> bytes:
    """A line as it appears in the PDF's content stream (a literal string: parentheses escaped)."""
    return line.replace("(", "\\(").replace(")", "\\)").encode()


def refused(r: Any, status: int, slug: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == f"/problems/{slug}"


# ---------------------------------------------------------------- the form


async def test_the_form_is_served_deterministic_with_protocol_hash_and_declarations(client, world, session):
    app_id, receipt = await submitted(client, world, stamp_id="01234567890123")
    first = await form(client, world, app_id)
    second = await form(client, world, app_id)
    assert first == second and first.startswith(b"%PDF-1.7")
    digest = hashlib.sha256(first).hexdigest()
    r = await client.get(f"/v1/applications/{app_id}/form.pdf", headers=world.headers)
    assert r.headers["etag"] == f'"{digest}"'
    # the hash of the first rendering is stored: what the legal representative signs
    stored = await session.execute(
        text("SELECT form_sha256 FROM intake.application_forms WHERE application_id = :a"), {"a": app_id}
    )
    assert stored.scalar_one() == digest
    assert shown(f"Protocollo n. (protocol number): {receipt['protocol_number']}") in first
    assert receipt["content_sha256"].encode() in first
    assert b"identificativo 01234567890123" in first
    assert b"De minimis - autodichiarazione" in first and shown("ai sensi del Reg. (UE) 2023/2831") in first
    # the server instant, in Rome's time and in UTC
    instant = datetime.fromisoformat(receipt["submitted_at"].replace("Z", "+00:00"))
    assert instant.isoformat().encode() in first
    # a draft has no form
    r = await client.post("/v1/applications", json=draft_body(world.call.id, world.company.id), headers=world.headers)
    draft = r.json()["id"]
    refused(await client.get(f"/v1/applications/{draft}/form.pdf", headers=world.headers), 404, "not-found")


async def test_the_form_is_not_rendered_by_the_submit(client, world, session):
    app_id, _ = await submitted(client, world)
    rows = await session.execute(
        text("SELECT count(*) FROM intake.application_forms WHERE application_id = :a"), {"a": app_id}
    )
    assert rows.scalar_one() == 0


# ---------------------------------------------------------------- the signature


async def test_signed_by_the_legal_representative_is_accepted(client, world, session):
    app_id, receipt = await submitted(client, world)
    pdf = await form(client, world, app_id)
    signed = await sign(pdf, world.ca.issue(LEGAL_REPRESENTATIVE))
    r = await upload(client, world, app_id, signed, key=f"sig-{app_id}")
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["signer_fiscal_code"] == LEGAL_REPRESENTATIVE
    assert out["form_sha256"] == hashlib.sha256(pdf).hexdigest()
    assert out["signed_sha256"] == hashlib.sha256(signed).hexdigest()
    got = (await client.get(f"/v1/applications/{app_id}", headers=world.headers)).json()
    assert got["form_signed_at"] == out["signed_at"]
    assert (await client.get(f"/v1/applications/{app_id}/signed-form", headers=world.headers)).json() == out
    event = await session.execute(
        text("SELECT payload FROM desk.outbox WHERE aggregate_id = :a AND event_type = 'application.form_signed'"),
        {"a": app_id},
    )
    payload = event.scalar_one()
    assert payload["protocol_number"] == receipt["protocol_number"]
    assert payload["signer_fiscal_code"] == LEGAL_REPRESENTATIVE
    # a retry with the same Idempotency-Key replays the acceptance; without one, a second upload is refused
    again = await upload(client, world, app_id, signed, key=f"sig-{app_id}")
    assert again.status_code == 201 and again.json() == out and again.headers["idempotent-replayed"] == "true"
    refused(await upload(client, world, app_id, signed), 409, "conflict")


async def test_unsigned_form_is_refused(client, world, session):
    app_id, _ = await submitted(client, world)
    refused(await upload(client, world, app_id, await form(client, world, app_id)), 422, "form-unsigned")
    refused(await upload(client, world, app_id, b"not a pdf at all"), 422, "form-unsigned")
    await unchanged(client, session, world, app_id)


async def test_signed_by_someone_else_is_refused(client, world, session):
    app_id, _ = await submitted(client, world)
    signed = await sign(await form(client, world, app_id), world.ca.issue(SOMEONE_ELSE))
    r = await upload(client, world, app_id, signed)
    refused(r, 422, "form-signer-not-legal-representative")
    assert r.json()["reason"] == "signer"
    await unchanged(client, session, world, app_id)


async def test_form_altered_after_signing_is_refused(client, world, session):
    app_id, receipt = await submitted(client, world)
    signed = await sign(await form(client, world, app_id), world.ca.issue(LEGAL_REPRESENTATIVE))
    line = shown(f"Protocollo n. (protocol number): {receipt['protocol_number']}")
    assert line in signed
    altered = signed.replace(line, line[:-1] + (b"7" if not line.endswith(b"7") else b"8"))
    refused(await upload(client, world, app_id, altered), 422, "form-tampered")
    await unchanged(client, session, world, app_id)


async def test_a_signature_over_another_pdf_is_refused(client, world, session):
    app_id, _ = await submitted(client, world)
    other = render_pdf(["# DOMANDA", "Protocollo n. (protocol number): 1"], title="Altro", instant=datetime.now(UTC))
    signed = await sign(other, world.ca.issue(LEGAL_REPRESENTATIVE))
    refused(await upload(client, world, app_id, signed), 422, "form-other-document")
    await unchanged(client, session, world, app_id)


async def test_a_certificate_of_an_untrusted_ca_is_refused(client, world, session, tmp_path):
    app_id, _ = await submitted(client, world)
    stranger = make_ca(tmp_path / "..")  # same shape, another key: not among the configured roots
    signed = await sign(await form(client, world, app_id), stranger.issue(LEGAL_REPRESENTATIVE))
    refused(await upload(client, world, app_id, signed), 422, "form-signature-untrusted")
    await unchanged(client, session, world, app_id)


async def test_late_signed_form_is_refused(client, world, session):
    # the call's formalities give no days after submission: whatever arrives afterwards is late
    await session.execute(
        text(
            "UPDATE intake.call_versions SET rules = jsonb_set(rules, '{formalities,signature_days}', '0') "
            "WHERE call_id = :c"
        ),
        {"c": world.call.id},
    )
    app_id, _ = await submitted(client, world)
    signed = await sign(await form(client, world, app_id), world.ca.issue(LEGAL_REPRESENTATIVE))
    r = await upload(client, world, app_id, signed)
    refused(r, 409, "form-signature-late")
    assert "deadline" in r.json()
    await unchanged(client, session, world, app_id)


# ---------------------------------------------------------------- the stamp duty


async def test_a_stamp_duty_is_declared_once_and_never_on_two_applications(client, world, session):
    r = await client.post("/v1/applications", json=draft_body(world.call.id, world.company.id), headers=world.headers)
    first = r.json()["id"]
    r = await client.post("/v1/applications", json=draft_body(world.call.id, world.company.id), headers=world.headers)
    second = r.json()["id"]
    body = stamp("98765432109876")
    r = await client.put(f"/v1/applications/{first}/stamp-duty", json=body, headers=world.headers)
    assert r.status_code == 200 and r.json() == body
    assert (await client.get(f"/v1/applications/{first}/stamp-duty", headers=world.headers)).json() == body
    # the same identifier on another application
    r = await client.put(f"/v1/applications/{second}/stamp-duty", json=body, headers=world.headers)
    refused(r, 409, "stamp-duty-reused")
    refused(await client.get(f"/v1/applications/{second}/stamp-duty", headers=world.headers), 404, "not-found")
    # declared once on the same application too
    r = await client.put(f"/v1/applications/{first}/stamp-duty", json=stamp(), headers=world.headers)
    refused(r, 409, "conflict")
    assert (await client.get(f"/v1/applications/{first}/stamp-duty", headers=world.headers)).json() == body
    # not 14 digits
    r = await client.put(f"/v1/applications/{second}/stamp-duty", json=stamp("12345"), headers=world.headers)
    refused(r, 422, "validation-error")
    audits = await session.execute(
        text(
            "SELECT count(*) FROM desk.audit_log "
            "WHERE action = 'application.stamp_duty_declared' AND resource_id IN (:a, :b)"
        ),
        {"a": first, "b": second},
    )
    assert audits.scalar_one() == 1


# ---------------------------------------------------------------- the legal representative


async def test_the_legal_representative_is_registered_with_the_company(client, officer, token_factory):
    from tests.services.intake.test_companies import company_body, new_partner, register

    _, partner = await new_partner(client, officer, token_factory)
    out = await register(client, partner, company_body(legal_representative_fiscal_code=LEGAL_REPRESENTATIVE.lower()))
    assert out["legal_representative_fiscal_code"] == LEGAL_REPRESENTATIVE
    got = (await client.get(f"/v1/companies/{out['id']}", headers=partner)).json()
    assert got["legal_representative_fiscal_code"] == LEGAL_REPRESENTATIVE
    r = await client.post(
        "/v1/companies", json=company_body(legal_representative_fiscal_code="RSSMRA80A01F205"), headers=partner
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/legal_representative_fiscal_code"


# ---------------------------------------------------------------- the stamp duty before submit


def stamp_missing(r: Any) -> None:
    """The submit's refusal names the missing stamp duty among its blocking reasons."""
    refused(r, 422, "application-not-submittable")
    missing = [e for e in r.json()["errors"] if e["code"] == "stamp_duty_missing"]
    assert [e["path"] for e in missing] == ["/stamp_duty"], r.json()["errors"]


async def test_a_submit_without_the_stamp_duty_is_refused_and_changes_nothing(client, world, session):
    r = await client.post("/v1/applications", json=draft_body(world.call.id, world.company.id), headers=world.headers)
    app_id = r.json()["id"]
    # the pre-check names it as its only blocking item (the draft is otherwise complete) and keeps no verdict
    check = (await client.post(f"/v1/applications/{app_id}/check", headers=world.headers)).json()
    assert check["submittable"] is False
    assert [(p["code"], p["path"], p["blocking"]) for p in check["problems"]] == [
        ("stamp_duty_missing", "/stamp_duty", True)
    ]
    verdict = await session.execute(
        text("SELECT precheck_version FROM intake.applications WHERE id = :a"), {"a": app_id}
    )
    assert verdict.scalar_one() is None
    stamp_missing(await client.post(f"/v1/applications/{app_id}/submit", headers=world.headers))
    got = (await client.get(f"/v1/applications/{app_id}", headers=world.headers)).json()
    assert got["status"] == "draft" and got["protocol_number"] is None
    events = await session.execute(
        text("SELECT count(*) FROM desk.outbox WHERE aggregate_id = :a AND event_type = 'application.submitted'"),
        {"a": app_id},
    )
    assert events.scalar_one() == 0
    counter = await session.execute(
        text("SELECT last_protocol FROM intake.call_counters WHERE call_id = :c"), {"c": world.call.id}
    )
    assert counter.scalar_one() == 0
    # declared, the same draft is submittable and its verdict is kept for the click-day path
    await client.put(f"/v1/applications/{app_id}/stamp-duty", json=stamp(), headers=world.headers)
    verdict = await session.execute(
        text("SELECT precheck_version FROM intake.applications WHERE id = :a"), {"a": app_id}
    )
    assert verdict.scalar_one() is not None
    r = await client.post(f"/v1/applications/{app_id}/submit", headers=world.headers)
    assert r.status_code == 201 and r.json()["receipt"]["protocol_number"] == 1


async def test_the_click_day_path_refuses_a_submit_without_the_stamp_duty(committing_client, engine):
    """The click-day path commits a kept verdict in one SQL statement: a draft without the stamp has no verdict,
    and a verdict kept anyway (as before the call required the stamp) is not committed by the SQL function."""
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        company = await make_company(s)
        await delegate(s, partner, company)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()
    r = await committing_client.post("/v1/applications", json=draft_body(call.id, company.id), headers=headers)
    app_id = r.json()["id"]
    async with engine.begin() as c:
        # a verdict kept as a passing pre-check keeps it, the stamp still missing
        await c.execute(
            text(
                "UPDATE intake.applications SET precheck_version = version, precheck_company_version = "
                "(SELECT version FROM intake.companies WHERE id = company_id), precheck_call_version = 1, "
                "precheck_valid_until = now() + interval '1 day', precheck_content_sha256 = repeat('0', 64), "
                "precheck_estimate = 'null' WHERE id = :a"
            ),
            {"a": app_id},
        )
    stamp_missing(await committing_client.post(f"/v1/applications/{app_id}/submit", headers=headers))
    async with engine.connect() as c:
        row = (
            await c.execute(
                text(
                    "SELECT a.status, a.protocol_number, k.last_protocol, "
                    "(SELECT count(*) FROM desk.outbox o WHERE o.aggregate_id = :a) AS events "
                    "FROM intake.applications a JOIN intake.call_counters k ON k.call_id = a.call_id "
                    "WHERE a.id = CAST(:a AS uuid)"
                ),
                {"a": app_id},
            )
        ).one()
    assert tuple(row) == ("draft", None, 0, 0)
    r = await committing_client.put(f"/v1/applications/{app_id}/stamp-duty", json=stamp(), headers=headers)
    assert r.status_code == 200, r.text
    r = await committing_client.post(f"/v1/applications/{app_id}/submit", headers=headers)
    assert r.status_code == 201 and r.json()["receipt"]["protocol_number"] == 1


# ---------------------------------------------------------------- the form as PDF/A-2b


async def test_the_form_is_pdf_a_2b_with_embedded_fonts_metadata_and_an_srgb_output_intent(client, world):
    app_id, receipt = await submitted(client, world)
    pdf = await form(client, world, app_id)
    assert pdf == await form(client, world, app_id)  # deterministic
    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    root = reader.root
    # the XMP metadata stream says PDF/A-2, level B, and repeats the document information
    metadata = root["/Metadata"].get_object()
    assert (metadata["/Type"], metadata["/Subtype"]) == ("/Metadata", "/XML")
    xmp = metadata.data.decode("utf-8")
    assert "<pdfaid:part>2</pdfaid:part>" in xmp and "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    title = f"Domanda n. {receipt['protocol_number']} - {receipt['call_code']}"
    assert f'<rdf:li xml:lang="x-default">{title}</rdf:li>' in xmp
    assert reader.trailer["/Info"]["/Title"] == title
    # an output intent whose ICC profile is an RGB display profile (three components)
    (intent,) = [i.get_object() for i in root["/OutputIntents"]]
    assert intent["/S"] == "/GTS_PDFA1" and intent["/OutputConditionIdentifier"] == "sRGB IEC61966-2.1"
    profile = intent["/DestOutputProfile"].get_object()
    icc = profile.data
    assert profile["/N"] == 3 and icc[36:40] == b"acsp" and icc[12:20] == b"mntrRGB "
    assert int.from_bytes(icc[:4], "big") == len(icc)
    # every font of every page embedded (TrueType program), none of the 14 standard fonts left unembedded
    used = set()
    for kid in root["/Pages"]["/Kids"]:
        for ref in kid.get_object()["/Resources"]["/Font"].values():
            font = ref.get_object()
            descriptor = font["/FontDescriptor"]
            program = descriptor["/FontFile2"].get_object()
            assert font["/Subtype"] == "/TrueType" and len(program.data) == program["/Length1"] > 10_000
            assert font["/LastChar"] - font["/FirstChar"] + 1 == len(font["/Widths"])
            used.add(str(font["/BaseFont"]))
    assert used == {"/BitstreamVeraSans-Roman", "/BitstreamVeraSans-Bold"}
    # a document identifier, and nothing PDF/A forbids
    assert len(reader.trailer["/ID"]) == 2
    for forbidden in (b"/JavaScript", b"/JS", b"/Encrypt", b"/SMask", b"/Transparency", b"/EmbeddedFile"):
        assert forbidden not in pdf


def test_the_srgb_profile_is_a_valid_icc_profile() -> None:
    """The profile is built in code: parsed by littlecms (through Pillow's ImageCms), it converts colours as the
    library's own sRGB does."""
    from PIL import Image, ImageCms

    from services.intake.applications.form import srgb_icc_profile

    ours = ImageCms.ImageCmsProfile(io.BytesIO(srgb_icc_profile()))
    assert ImageCms.getProfileDescription(ours).strip() == "sRGB IEC61966-2.1"
    lab = ImageCms.createProfile("LAB")
    reference = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    for colour in ((200, 100, 50), (0, 0, 0), (255, 255, 255), (12, 200, 240)):
        pixel = Image.new("RGB", (1, 1), colour)
        got = ImageCms.applyTransform(pixel, ImageCms.buildTransform(ours, lab, "RGB", "LAB"))
        expected = ImageCms.applyTransform(pixel, ImageCms.buildTransform(reference, lab, "RGB", "LAB"))
        assert got.getpixel((0, 0)) == expected.getpixel((0, 0))
