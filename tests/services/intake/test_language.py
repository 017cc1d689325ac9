"""Every message wholly in the negotiated language, through HTTP: Accept-Language with q-values, Italian by
default and when nothing acceptable is supported, Content-Language on every body with text, token errors and
library (python-stdnum) texts translated, the enum labels' catalogue."""

from __future__ import annotations

import re

import pytest

from tests.services.intake.test_companies import company_body, with_wrong_check_digit

LIBRARY_WORDS = re.compile(r"\b(the|number|checksum|check digit|invalid|input)\b", re.I)
ITALIAN_WORDS = re.compile(r"\b(partita|non|valida|valido|cifra|controllo|dati|corrisponde)\b", re.I)


def _texts(problem: dict) -> str:
    return " ".join([problem["title"], problem.get("detail") or "", *(e["message"] for e in problem.get("errors", []))])


async def _wrong_vat(client, officer, accept_language: str | None):
    body = company_body()
    body["vat_number"] = with_wrong_check_digit(body["vat_number"])
    headers = {**officer, **({"Accept-Language": accept_language} if accept_language else {})}
    r = await client.post("/v1/companies", json=body, headers=headers)
    assert r.status_code == 422, r.text
    return r


async def test_invalid_vat_problem_in_italian_has_no_english_library_text(client, officer):
    r = await _wrong_vat(client, officer, None)
    assert r.headers["content-language"] == "it"
    assert "accept-language" in r.headers["vary"].lower()
    p = r.json()
    assert p["title"] == "Dati non validi"
    [err] = p["errors"]
    assert err["code"] == "vat_number_invalid"
    assert err["message"] == "Partita IVA non valida: la cifra di controllo non corrisponde."
    assert not LIBRARY_WORDS.search(_texts(p)), _texts(p)


async def test_invalid_vat_problem_in_english_has_no_italian(client, officer):
    r = await _wrong_vat(client, officer, "fr;q=0.9, en-GB;q=0.8, it;q=0.1")
    assert r.headers["content-language"] == "en"
    p = r.json()
    assert p["title"] == "Invalid input"
    assert p["errors"][0]["message"] == "Invalid VAT number: the check digit does not match."
    assert not ITALIAN_WORDS.search(_texts(p)), _texts(p)


@pytest.mark.parametrize(
    ("accept_language", "lang"),
    [("it-IT,it;q=0.9,en;q=0.8", "it"), ("en;q=0.6, it;q=0.5", "en"), ("it;q=0, *", "en"), ("fr", "it"), ("*", "it")],
)
async def test_q_values_choose_the_language(client, officer, accept_language, lang):
    r = await _wrong_vat(client, officer, accept_language)
    assert r.headers["content-language"] == lang
    assert r.json()["title"] == {"it": "Dati non validi", "en": "Invalid input"}[lang]


async def test_french_gets_italian_and_says_so(client, officer):
    r = await client.get(
        "/v1/companies/00000000-0000-0000-0000-000000000000", headers={**officer, "Accept-Language": "fr"}
    )
    assert r.status_code == 404
    assert r.headers["content-language"] == "it"
    assert r.json()["title"] == "Risorsa non trovata"
    ok = await client.get("/problems", headers={"Accept-Language": "fr-FR"})  # a JSON body, not a problem
    assert ok.status_code == 200 and ok.headers["content-language"] == "it"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "invalid_request"),
        ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x" * 32}, "invalid_client"),
    ],
)
async def test_token_errors_have_title_and_detail_in_one_language(client, form, error):
    it = await client.post("/v1/oauth/token", data=form)
    en = await client.post("/v1/oauth/token", data=form, headers={"Accept-Language": "en"})
    assert it.json()["error"] == en.json()["error"] == error  # RFC 6749: the same code and ASCII description
    assert it.json()["error_description"] == en.json()["error_description"]
    assert en.json()["error_description"].isascii()
    assert it.headers["content-language"] == "it" and en.headers["content-language"] == "en"
    assert not LIBRARY_WORDS.search(it.json()["title"] + " " + it.json()["detail"]), it.json()
    assert not ITALIAN_WORDS.search(en.json()["title"] + " " + en.json()["detail"]), en.json()
    assert it.json()["detail"] != en.json()["detail"]


async def test_invalid_scope_is_translated(client, session):
    from shared.auth import create_client

    c, secret = await create_client(session, kind="officer", name="officer scopes")
    form = {"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": secret, "scope": "nope"}
    it = (await client.post("/v1/oauth/token", data=form)).json()
    en = (await client.post("/v1/oauth/token", data=form, headers={"Accept-Language": "en"})).json()
    assert it["error"] == "invalid_scope"
    assert it["detail"] == "Ambiti non concessi a questo client: nope."
    assert en["detail"] == en["error_description"] == "Scopes not granted to this client: nope."


async def test_labels_list_each_enum_field_with_italian_and_english(client):
    r = await client.get("/v1/labels", headers={"Accept-Language": "en"})
    assert r.status_code == 200
    fields = {f["field"]: f["values"] for f in r.json()}
    legal = {v["code"]: (v["label_it"], v["label_en"]) for v in fields["CompanyOut.legal_form"]}
    assert legal["ditta_individuale"] == ("Ditta individuale", "Sole proprietorship")
    statuses = {v["code"] for v in fields["ApplicationOut.status"]}
    assert "draft" in statuses and "submitted" in statuses
    for values in fields.values():
        for v in values:
            assert v["label_it"] and v["label_en"], v
