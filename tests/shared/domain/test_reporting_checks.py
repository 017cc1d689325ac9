"""The automatic checks on claim lines, the budget cut, the recognised total and the evidence sniffing."""

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from services.intake.calls.service import load_rules_file
from shared.domain import reporting as r
from tests.factories import CALL_FILE

D = Decimal
RULES = load_rules_file(CALL_FILE)
BUDGET = r.ApprovedBudget(
    by_category={"a": D("2000.00"), "b": D("10000.00"), "c": D("1000.00")},
    by_market={"US": D("9000.00"), "VN": D("4000.00")},
    flat_rates=frozenset({"d", "e"}),
)
PROJECT = r.ProjectFacts(
    start_date=date(2025, 3, 10),
    deadline=date(2026, 9, 30),
    submitted_on=date(2025, 3, 10),
    cup="E18H25000120007",
    budget=BUDGET,
    tolerance=D("0.20"),
)
LINE = r.LineFacts(
    id="l1",
    kind="invoice",
    supplier_vat="01234560157",
    document_number="2025/0147",
    issue_date=date(2025, 4, 15),
    taxable_amount=D("4000.00"),
    category="b",
    market="VN",
    payment_date=date(2025, 5, 10),
    payment_method="bank_transfer",
    cup_quoted=False,
    evidence_count=1,
)
INVOICE = r.InvoiceEvidence(
    supplier_vat="01234560157",
    supplier_name="Fiere",
    number="2025/0147",
    issue_date=date(2025, 4, 15),
    taxable_amount=D("4000.00"),
    currency="EUR",
    cup_found=True,
)


def _by_code(line: r.LineFacts, project: r.ProjectFacts = PROJECT) -> dict[str, r.CheckResult]:
    return {c.code: c for c in r.run_line_checks([line], project)[line.id]}


def test_a_clean_e_invoice_line_passes_every_check() -> None:
    checks = _by_code(replace(LINE, invoice=INVOICE))
    assert list(checks) == [
        r.ISSUE_DATE_IN_PROJECT,
        r.ISSUE_DATE_AFTER_SUBMISSION,
        r.CATEGORY_APPROVED,
        r.CUP_QUOTED,
        r.INVOICE_CLAIMED_ONCE,
        r.EVIDENCE_PRESENT,
        r.EVIDENCE_MATCHES,
        r.AMOUNT_WITHIN_BUDGET,
        r.PAYMENT_TRACEABLE,
    ]
    assert {c.status for c in checks.values()} == {"pass"}
    assert all(c.message_it and c.message_en for c in checks.values())


def test_an_invoice_dated_before_the_submission_fails_and_blocks() -> None:
    checks = _by_code(replace(LINE, issue_date=date(2025, 3, 9), payment_date=date(2025, 3, 9)))
    c = checks[r.ISSUE_DATE_AFTER_SUBMISSION]
    assert c.status == "fail" and c.blocking
    assert "2025-03-10" in c.message_en
    assert checks[r.ISSUE_DATE_IN_PROJECT].status == "fail"


def test_unknown_submission_day_needs_review() -> None:
    c = _by_code(LINE, replace(PROJECT, submitted_on=None))[r.ISSUE_DATE_AFTER_SUBMISSION]
    assert c.status == "needs_review" and not c.blocking


def test_after_the_deadline_fails() -> None:
    c = _by_code(replace(LINE, issue_date=date(2026, 10, 1), payment_date=date(2026, 10, 2)))
    assert c[r.ISSUE_DATE_IN_PROJECT].status == "fail"
    assert c[r.ISSUE_DATE_AFTER_SUBMISSION].status == "pass"


def test_category_not_approved_fails() -> None:
    assert _by_code(replace(LINE, category="x"))[r.CATEGORY_APPROVED].blocking


@pytest.mark.parametrize(
    ("invoice", "declared", "status"),
    [
        (INVOICE, False, "pass"),
        (replace(INVOICE, cup_found=False), True, "fail"),  # the e-invoice is read: a declaration does not help
        (None, True, "needs_review"),
        (None, False, "fail"),
    ],
)
def test_cup_quoted(invoice: r.InvoiceEvidence | None, declared: bool, status: str) -> None:
    assert _by_code(replace(LINE, invoice=invoice, cup_quoted=declared))[r.CUP_QUOTED].status == status


@pytest.mark.parametrize(
    ("method", "paid", "status"),
    [
        ("cash", date(2025, 5, 1), "fail"),
        (None, date(2025, 5, 1), "fail"),
        ("card", None, "fail"),
        ("riba", date(2025, 4, 1), "fail"),  # paid before the invoice was issued
        ("sepa_dd", date(2025, 4, 15), "pass"),
    ],
)
def test_payment_traceable(method: str | None, paid: date | None, status: str) -> None:
    c = _by_code(replace(LINE, payment_method=method, payment_date=paid))[r.PAYMENT_TRACEABLE]
    assert c.status == status
    assert c.blocking == (status == "fail")


def test_declared_data_are_compared_with_the_e_invoice() -> None:
    wrong = replace(LINE, invoice=INVOICE, supplier_vat="07654320980", taxable_amount=D("4100.00"))
    c = _by_code(wrong)[r.EVIDENCE_MATCHES]
    assert c.status == "fail"
    assert c.details["mismatches"] == ["supplier_vat", "taxable_amount"]
    part = _by_code(replace(LINE, invoice=INVOICE, taxable_amount=D("3000.00")))[r.EVIDENCE_MATCHES]
    assert part.status == "needs_review"
    assert _by_code(LINE)[r.EVIDENCE_MATCHES].status == "needs_review"  # a PDF: the officer compares


def test_a_line_without_evidence_fails_and_a_duplicate_blocks() -> None:
    assert _by_code(replace(LINE, evidence_count=0))[r.EVIDENCE_PRESENT].status == "fail"
    assert _by_code(replace(LINE, claimed_elsewhere=True))[r.INVOICE_CLAIMED_ONCE].blocking


def test_the_excess_over_the_approved_line_plus_tolerance_is_cut() -> None:
    # b: 10000 approved, +20 % -> 12000; 7000 already recognised on an earlier claim leaves 5000
    lines = [
        replace(LINE, id="x", market=None, taxable_amount=D("3000.00"), issue_date=date(2025, 4, 1)),
        replace(LINE, id="y", market=None, taxable_amount=D("3000.00")),
    ]
    out = r.check_amounts(lines, PROJECT, r.PriorAmounts(by_category={"b": D("7000.00")}))
    assert out["x"].status == "needs_review"  # no market: not in the plan, but within the budget
    assert out["y"].status == "fail"
    assert out["y"].details["admissible_amount"] == D("2000.00")
    assert out["y"].details["cut"] == D("1000.00")


def test_the_market_line_cuts_too() -> None:
    # VN: 4000 approved -> 4800 with the tolerance
    out = r.check_amounts([replace(LINE, taxable_amount=D("5000.00"))], PROJECT)
    assert out["l1"].details["admissible_amount"] == D("4800.00")


def test_suggested_amount_is_zero_after_a_blocking_failure() -> None:
    checks = r.run_line_checks([replace(LINE, payment_method="cash")], PROJECT)["l1"]
    assert r.suggested_amount(replace(LINE, payment_method="cash"), checks) == 0


def test_flat_rates_are_recomputed_on_what_is_recognised() -> None:
    lines = [r.RecognisedLine("1", "b", "VN", D("4000.00")), r.RecognisedLine("2", "a", "US", D("1000.00"))]
    rec = r.recognise(RULES, lines, BUDGET, D("0.20"))
    # a is capped at 20 % of (b + c) = 800; d = 20 % of 4800; e = 7 % of (4800 + 960)
    assert rec.direct_by_category == {"a": D("800.00"), "b": D("4000.00"), "c": D("0.00")}
    assert rec.flat_rates == {"d": D("960.00"), "e": D("403.20")}
    assert rec.total == D("6163.20")
    assert rec.cut_over_budget == 0


def test_recognised_beyond_the_ceiling_is_not_recognised_and_ungranted_flat_rates_are_left_out() -> None:
    budget = replace(BUDGET, by_market={}, flat_rates=frozenset({"d"}))
    rec = r.recognise(RULES, [r.RecognisedLine("1", "b", None, D("13000.00"))], budget, D("0.20"))
    assert rec.direct_by_category["b"] == D("12000.00")
    assert rec.cut_over_budget == D("1000.00")
    assert rec.flat_rates == {"d": D("2400.00")}
    assert rec.total == D("14400.00")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"%PDF-1.7\n...", "pdf"),
        (b"\x89PNG\r\n\x1a\n....", "png"),
        (b"\xff\xd8\xff\xe0..JFIF", "jpeg"),
        (b"<?xml version='1.0'?><p:FatturaElettronica xmlns:p='x'/>", "fatturapa"),
        (b"MZ\x90\x00", None),
        (b"<html></html>", None),
        (b"", None),
    ],
)
def test_evidence_is_recognised_by_content(data: bytes, kind: str | None) -> None:
    assert r.sniff_evidence(data) == kind


def test_a_declared_type_that_contradicts_the_content_is_caught() -> None:
    assert r.declared_matches("pdf", "application/pdf", "fattura.pdf")
    assert r.declared_matches("pdf", "application/octet-stream", "scan")  # says nothing: the content decides
    assert not r.declared_matches("png", "application/pdf", "fattura.pdf")
    assert not r.declared_matches("png", "image/png", "fattura.pdf")  # the extension lies
    assert r.declared_matches("fatturapa", "text/xml; charset=utf-8", "IT01234560157_00147.xml")
    assert r.is_signed_envelope(b"0\x82\x10\x00", "x.xml")
    assert r.is_signed_envelope(b"<x/>", "IT01234560157_00147.xml.p7m")
