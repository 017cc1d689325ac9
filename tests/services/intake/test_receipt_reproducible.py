"""Receipts anyone can check: the content behind `content_sha256` is rebuilt from `GET /v1/applications/{id}`
alone, following the README's recipe ("Receipts: what the hash covers"), and the receipt's signature and chain
link verify with the key the call's public register publishes."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call


def canonical(obj: Any) -> bytes:
    """The README's canonical JSON: UTF-8, sorted keys, no spaces, non-ASCII kept as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_from(app: dict[str, Any]) -> dict[str, Any]:
    """The README's recipe, from the application as GET returns it and nothing else."""
    return {
        "application_id": app["id"],
        "call_id": app["call_id"],
        "call_version": app["call_version"],
        "company_id": app["company_id"],
        "company_vat_number": app["company_vat_number"],
        "title": app["title"],
        "action_plan": app["action_plan"],
        "flat_rates": app["flat_rates"],
        "network": app["network"],
        "de_minimis_declarations": app["de_minimis_declarations"],
        "expense_lines": app["expense_lines"],
    }


async def test_the_content_hash_signature_and_chain_link_are_reproduced_from_public_reads(client, session):
    call = await open_call(session)
    partner = await make_partner(session)
    company = await make_company(session)
    await delegate(session, partner, company)
    headers = await make_token(session, "partner", partner_id=partner.id)
    body = draft_body(call.id, company.id, title="Fiere in Vietnam è Brasile")  # non-ASCII kept as is
    draft = await client.post("/v1/applications", json=body, headers=headers)
    assert draft.status_code == 201, draft.text
    app_id = draft.json()["id"]
    assert draft.json()["content_sha256"] is None and draft.json()["company_vat_number"] is None
    await declare_stamp_duty(client, app_id, headers)
    submitted = await client.post(f"/v1/applications/{app_id}/submit", headers=headers)
    assert submitted.status_code == 201, submitted.text
    receipt = submitted.json()

    got = await client.get(f"/v1/applications/{app_id}", headers=headers)
    assert got.status_code == 200, got.text
    app = got.json()
    digest = hashlib.sha256(canonical(content_from(app))).hexdigest()
    assert digest == receipt["receipt"]["content_sha256"] == app["content_sha256"]
    assert app["company_vat_number"] == company.vat_number

    # the signature over the receipt's canonical JSON, with the register's published key (no token needed)
    register = await client.get(f"/v1/calls/{call.id}/register")
    assert register.status_code == 200, register.text
    key = load_pem_public_key(register.json()["public_key_pem"].encode())
    assert isinstance(key, Ed25519PublicKey)
    signature = receipt["signature"]
    key.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), canonical(receipt["receipt"]))

    # the chain link: sha256(previous_hash + canonical receipt); the first of this call chains to 64 zeros
    assert receipt["previous_hash"] == "0" * 64
    link = hashlib.sha256(receipt["previous_hash"].encode() + canonical(receipt["receipt"])).hexdigest()
    assert link == receipt["chain_hash"]
    entry = next(e for e in register.json()["items"] if e["receipt"]["application_id"] == app_id)
    assert entry["chain_hash"] == link and entry["content_sha256"] == digest
