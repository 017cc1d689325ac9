"""The certificate of attendance as a PDF, written by hand: no PDF library is a dependency, and one page of
text needs little. One A4 page, Helvetica (a standard font, nothing embedded), uncompressed text objects and
a cross-reference table with exact byte offsets, so any reader opens it and the text can be searched."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

_ROME = ZoneInfo("Europe/Rome")


def _literal(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (Latin-1 covers Italian), with (, ) and \\ escaped; characters
    outside Latin-1 become '?'."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1", errors="replace") + b")"


def _hours(value: Decimal) -> str:
    return f"{value:.2f}".replace(".", ",")


def certificate_pdf(
    *,
    participant: str,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    hours: Decimal,
    session_hours: Decimal,
    certificate_id: str,
) -> bytes:
    start, end = starts_at.astimezone(_ROME), ends_at.astimezone(_ROME)
    lines: list[tuple[int, int, str]] = [  # (font size, y, text)
        (20, 760, "Attestato di partecipazione"),
        (11, 738, "Certificate of attendance"),
        (12, 690, "Si attesta che / This certifies that"),
        (16, 664, participant),
        (12, 634, "ha partecipato alla sessione / attended the session"),
        (14, 608, title),
        (11, 584, f"{start:%d/%m/%Y %H:%M} - {end:%d/%m/%Y %H:%M} (Europe/Rome)"),
        (12, 550, f"Ore di presenza / Hours attended: {_hours(hours)} su / of {_hours(session_hours)}"),
        (9, 80, f"Identificativo / Reference: {certificate_id}"),
    ]
    content = b"BT\n"
    for size, y, text in lines:
        content += b"/F1 %d Tf 1 0 0 1 72 %d Tm " % (size, y) + _literal(text) + b" Tj\n"
    content += b"ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title " + _literal(f"Attestato - {title}") + b" /Producer (desk) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
