"""Verification of the application form signed by the company's legal representative (PAdES, with pyhanko).

What is accepted: a PDF whose first signature was added as an incremental update to exactly the bytes the desk
rendered (the signed revision's original bytes are the desk's form), is intact and covers the whole file (or is
followed only by the long-term validation material pyhanko accepts: DSS, document timestamps), by a certificate
that chains to a configured trust root and was valid at the signing instant, whose subject serialNumber names
the legal representative's fiscal code ("TINIT-<codice fiscale>", ETSI EN 319 412-1). Each refusal has its own
reason, which the service maps to a problem type.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

log = logging.getLogger("desk.intake.signature")

# A signer's clock may run slightly ahead of the desk's.
CLOCK_SKEW = timedelta(minutes=5)


class SignatureRefused(Exception):
    """Why a signed form is refused: `reason` is one of unsigned, tampered, other_document, untrusted, signer."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VerifiedSignature:
    signer_fiscal_code: str
    signing_time: datetime


def load_trust_roots(paths: list[Path]) -> list[x509.Certificate]:
    """Every certificate of the PEM (or DER) files given: the roots a signer's certificate must chain to."""
    roots: list[x509.Certificate] = []
    for path in paths:
        data = path.read_bytes()
        if pem.detect(data):
            roots += [x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
        else:
            roots.append(x509.Certificate.load(data))
    return roots


def fiscal_code_of(cert: x509.Certificate) -> str | None:
    """The fiscal code in the subject's serialNumber (TINIT-<code>, or the bare code), upper case."""
    serial = cert.subject.native.get("serial_number")
    if not isinstance(serial, str):
        return None
    serial = serial.strip().upper()
    return serial.removeprefix("TINIT-") or None


async def verify_signed_form(
    signed: bytes, *, form: bytes, trust_roots: list[x509.Certificate], not_before: datetime, now: datetime
) -> VerifiedSignature:
    """The signer and signing instant of `signed`, a signed copy of `form`; SignatureRefused otherwise."""
    try:
        reader = PdfFileReader(io.BytesIO(signed), strict=False)
        signatures = reader.embedded_regular_signatures
    except Exception as exc:  # any parse failure: no signed PDF to verify
        raise SignatureRefused("unsigned", f"not a readable PDF: {type(exc).__name__}") from exc
    if not signatures:
        raise SignatureRefused("unsigned", "the PDF carries no signature")
    sig = signatures[0]
    claimed = sig.self_reported_timestamp
    if claimed is None:
        raise SignatureRefused("untrusted", "the signature states no signing time")
    if claimed.tzinfo is None:
        claimed = claimed.replace(tzinfo=UTC)
    if not not_before - CLOCK_SKEW <= claimed <= now + CLOCK_SKEW:
        raise SignatureRefused("untrusted", f"signing time {claimed.isoformat()} outside the form's life")
    context = ValidationContext(trust_roots=trust_roots, moment=claimed, allow_fetching=False)
    try:
        status = await async_validate_pdf_signature(sig, context)
    except Exception as exc:  # a malformed signature dictionary or CMS blob: tampered
        raise SignatureRefused("tampered", f"signature unreadable: {type(exc).__name__}") from exc
    if not (status.intact and status.valid):
        raise SignatureRefused("tampered", "the signed bytes do not match the signature")
    lta_only = status.modification_level is not None and status.modification_level <= ModificationLevel.LTA_UPDATES
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE and not (
        status.coverage == SignatureCoverageLevel.ENTIRE_REVISION and lta_only
    ):
        raise SignatureRefused("tampered", "the document was modified after signing")
    # The desk's form is the revision the signature was added to: its bytes open the signed file.
    if sig.signed_revision != 1 or not signed.startswith(form):
        raise SignatureRefused("other_document", "the signature is not over the form the desk produced")
    if not status.trusted:
        raise SignatureRefused("untrusted", f"certificate not trusted at signing time: {status.trust_problem_indic}")
    code = fiscal_code_of(status.signing_cert)
    if code is None:
        raise SignatureRefused("signer", "the certificate names no fiscal code")
    return VerifiedSignature(signer_fiscal_code=code, signing_time=claimed.astimezone(UTC))
