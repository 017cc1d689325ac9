"""The submitted application as a document (the "domanda"): a PDF rendered from the submitted content and its receipt.

The same inputs give the same bytes: no clock, no random file identifier (the trailer's /ID is derived from the
content), a fixed /CreationDate (the submission instant). So the desk renders it lazily, on the first read, never
inside the click-day submit, and stores only its SHA-256: the legal representative signs exactly these bytes and
the desk can recompute them at any time to check what was signed.

Written directly in PDF 1.7 syntax (ISO 32000-1) with the standard Helvetica font in WinAnsiEncoding: a text-only
form needs nothing more, and no layout library's version can change the bytes under a stored hash. Not PDF/A: the
standard fonts are not embedded and there is no output intent or XMP metadata.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

ROME = ZoneInfo("Europe/Rome")
LINES_PER_PAGE = 58
WIDTH = 96  # characters of Helvetica 9 pt on an A4 line between 50 pt margins

DECLARATIONS = (
    "Il legale rappresentante dell'impresa, consapevole delle sanzioni penali previste dall'art. 76 del DPR "
    "445/2000 per le dichiarazioni mendaci e della decadenza dai benefici prevista dall'art. 75, DICHIARA "
    "(The legal representative, aware of the criminal penalties of art. 76 of DPR 445/2000 for false statements "
    "and of the loss of benefits under art. 75, DECLARES):",
    "a) che l'impresa possiede i requisiti di ammissibilita' previsti dal bando (the company meets the call's "
    "eligibility requirements);",
    "b) che i dati e le informazioni contenuti nella presente domanda sono veri e completi (the data in this "
    "application are true and complete);",
    "c) ai sensi del Reg. (UE) 2023/2831, gli aiuti de minimis ricevuti dall'impresa unica nell'esercizio in corso "
    "e nei due precedenti sono esclusivamente quelli elencati nella sezione De minimis (de minimis "
    "self-declaration: the aid received by the single undertaking in the current and the two previous fiscal "
    "years is only that listed in the De minimis section);",
    "d) di aver assolto l'imposta di bollo con la marca indicata, che non sara' utilizzata per altri adempimenti "
    "(the stamp duty was paid with the stamp identified above, not to be used for anything else);",
    "e) di aver preso visione dell'informativa sul trattamento dei dati personali (Reg. (UE) 2016/679) (the "
    "privacy notice under Regulation (EU) 2016/679 has been read).",
)


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent or "", break_long_words=True) or [
        indent
    ]


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(", ", ": "), default=str)


def _section(title: str) -> list[str]:
    return ["", f"## {title}"]


def form_lines(
    *,
    receipt: dict[str, Any],
    title: str,
    action_plan: dict[str, Any],
    expense_lines: Iterable[dict[str, Any]],
    flat_rates: list[str],
    network: dict[str, Any] | None,
    de_minimis_declarations: list[dict[str, Any]],
    stamp_duty_id: str | None,
    stamp_duty_issued_on: str | None,
) -> list[str]:
    """The form's text, line by line: what the legal representative reads and signs."""
    submitted = datetime.fromisoformat(str(receipt["submitted_at"]).replace("Z", "+00:00"))
    out = [
        "# DOMANDA DI CONTRIBUTO - APPLICATION FORM",
        f"Bando (call): {receipt['call_code']} - versione delle regole (rules version) {receipt['call_version']}",
        f"Protocollo n. (protocol number): {receipt['protocol_number']}",
        f"Presentata il (submitted at): {submitted.astimezone(ROME).isoformat()} Europe/Rome "
        f"({submitted.isoformat()} UTC)",
        f"Domanda (application): {receipt['application_id']}",
        f"Partita IVA dell'impresa (company VAT number): {receipt['company_vat_number']}",
        f"Impronta SHA-256 del contenuto (content hash): {receipt['content_sha256']}",
        "Marca da bollo (stamp duty): "
        + (f"identificativo {stamp_duty_id}, emessa il (issued on) {stamp_duty_issued_on}" if stamp_duty_id else "-"),
    ]
    out += _section("Titolo del progetto (project title)")
    out += _wrap(title, "  ")
    out += _section("Piano d'azione (action plan)")
    for key in sorted(action_plan):
        out += _wrap(f"{key}: {_value(action_plan[key])}", "  ")
    out += _section("Spese (expense lines)")
    for i, ln in enumerate(expense_lines, start=1):
        market = f", mercato {ln['target_market']}" if ln.get("target_market") else ""
        supplier = f", fornitore {ln['supplier']}" if ln.get("supplier") else ""
        out += _wrap(f"{i}. [{ln['category']}] EUR {ln['amount']} - {ln['description']}{market}{supplier}", "  ")
    out += _wrap(f"Forfait (flat rates): {', '.join(flat_rates) or '-'}", "  ")
    if network:
        out += _section("Rete d'impresa (business network)")
        out += _wrap(_value(network), "  ")
    out += _section("De minimis - autodichiarazione (self-declaration, DPR 445/2000)")
    if not de_minimis_declarations:
        out += _wrap("Nessun aiuto de minimis ricevuto (no de minimis aid received).", "  ")
    for i, d in enumerate(de_minimis_declarations, start=1):
        out += _wrap(
            f"{i}. {d.get('granting_authority')} - EUR {d.get('amount')} concesso il (granted on) "
            f"{d.get('granted_on')} a (to) {d.get('vat_number')}, {d.get('regulation')}"
            + (f", rif. {d['reference']}" if d.get("reference") else ""),
            "  ",
        )
    out += _section("Dichiarazioni (declarations)")
    for text in DECLARATIONS:
        out += _wrap(text, "  ")
    out += _section("Firma (signature)")
    out += _wrap(
        "Firmato digitalmente dal legale rappresentante con firma elettronica qualificata (PAdES) "
        "(digitally signed by the legal representative with a qualified electronic signature).",
        "  ",
    )
    return out


def _pdf_text(s: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding; characters outside it become '?'."""
    raw = s.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _page_stream(lines: list[str], page: int, pages: int) -> bytes:
    ops = [b"BT", b"/F1 9 Tf", b"11.5 TL", b"50 792 Td"]
    for line in lines:
        heading = line.startswith("#")
        text = line.lstrip("# ") if heading else line
        ops.append(b"/F2 10 Tf" if heading else b"/F1 9 Tf")
        ops.append(_pdf_text(text) + b" '")
    ops += [b"ET", b"BT /F1 8 Tf 50 30 Td " + _pdf_text(f"Pagina (page) {page} / {pages}") + b" Tj ET"]
    return b"\n".join(ops)


def _pdf_date(instant: datetime) -> str:
    return instant.strftime("D:%Y%m%d%H%M%SZ")


def render_pdf(lines: list[str], *, title: str, instant: datetime) -> bytes:
    """The PDF of `lines` (A4, paged): the same arguments always give the same bytes."""
    chunks = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[]]
    n = len(chunks)
    # object numbers: 1 catalog, 2 pages, 3 Helvetica, 4 Helvetica-Bold, 5 info, then (page, content) pairs
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R /Lang (it-IT) >>",
        2: b"<< /Type /Pages /Kids ["
        + b" ".join(f"{6 + 2 * i} 0 R".encode() for i in range(n))
        + f"] /Count {n} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        5: b"<< /Title "
        + _pdf_text(title)
        + b" /Producer (Sportello unico regionale) /CreationDate "
        + _pdf_text(_pdf_date(instant))
        + b" /ModDate "
        + _pdf_text(_pdf_date(instant))
        + b" >>",
    }
    for i, chunk in enumerate(chunks):
        page_no, content_no = 6 + 2 * i, 7 + 2 * i
        objects[page_no] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {content_no} 0 R "
            "/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> >>"
        ).encode()
        stream = _page_stream(chunk, i + 1, n)
        objects[content_no] = f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream"
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += f"{num} 0 obj\n".encode() + objects[num] + b"\nendobj\n"
    xref_at = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for num in range(1, size):
        out += f"{offsets[num]:010d} 00000 n \n".encode()
    file_id = hashlib.md5(bytes(out), usedforsecurity=False).hexdigest()  # an identifier, not a MAC
    out += (
        f"trailer\n<< /Size {size} /Root 1 0 R /Info 5 0 R /ID [<{file_id}> <{file_id}>] >>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    ).encode()
    return bytes(out)
