"""The submitted application as a document (the "domanda"): a PDF/A-2b rendered from the submitted content and
its receipt.

The same inputs give the same bytes: no clock, no random file identifier (the trailer's /ID is derived from the
content), a fixed /CreationDate (the submission instant), fonts embedded whole (no subset named at random). So
the desk renders it lazily, on the first read, never inside the click-day submit, and stores only its SHA-256:
the legal representative signs exactly these bytes and the desk can recompute them at any time to check what
was signed.

Written directly in PDF 1.7 syntax (ISO 32000-1), as ISO 19005-2 level B asks of a text-only document: the
Bitstream Vera TrueType fonts that reportlab ships, embedded whole, in WinAnsiEncoding with their widths; an
XMP metadata stream that says pdfaid:part 2, conformance B and repeats the document information; an output
intent with an sRGB ICC profile built here (`srgb_icc_profile`); no transparency, no JavaScript, no
encryption. No layout library writes the bytes, so none of its versions can change them under a stored hash.
"""

from __future__ import annotations

import hashlib
import json
import struct
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import reportlab
from reportlab.pdfbase.ttfonts import TTFontFile

ROME = ZoneInfo("Europe/Rome")
LINES_PER_PAGE = 58
WIDTH = 86  # characters of Vera Sans 9 pt on an A4 line between 50 pt margins
PRODUCER = "Sportello unico regionale"

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
    return instant.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")


def _xmp_date(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


# ---------------------------------------------------------------- fonts


@dataclass(frozen=True)
class _Font:
    name: str
    program: bytes
    widths: tuple[float, ...]  # WinAnsiEncoding codes 32..255, in 1/1000 of the text size
    descriptor: str


_FONT_FILES = {"F1": "Vera.ttf", "F2": "VeraBd.ttf"}


def _number(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


@cache
def _font(file: str) -> _Font:
    """A TrueType font shipped by reportlab (Bitstream Vera), its widths over WinAnsiEncoding and descriptor."""
    path = Path(reportlab.__file__).resolve().parent / "fonts" / file
    ttf = TTFontFile(str(path))
    name = ttf.name.decode() if isinstance(ttf.name, bytes) else str(ttf.name)
    widths = []
    for code in range(32, 256):
        try:
            char = bytes([code]).decode("cp1252")
        except UnicodeDecodeError:  # the five codes WinAnsiEncoding leaves undefined: never written
            widths.append(0.0)
            continue
        widths.append(float(ttf.charWidths.get(ord(char), ttf.defaultWidth)))
    descriptor = (
        f"/Type /FontDescriptor /FontName /{name} /Flags 32 "
        f"/FontBBox [{' '.join(_number(v) for v in ttf.bbox)}] /ItalicAngle {_number(ttf.italicAngle)} "
        f"/Ascent {_number(ttf.ascent)} /Descent {_number(ttf.descent)} /CapHeight {_number(ttf.capHeight)} "
        f"/StemV {ttf.stemV}"
    )
    return _Font(name, path.read_bytes(), tuple(widths), descriptor)


# ---------------------------------------------------------------- the output intent's colour profile


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def _text_description(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    # textDescriptionType (ICC.1:2001-04): ASCII, then empty Unicode and ScriptCode descriptions
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 8 + b"\0" * 3 + b"\0" * 67


def _srgb_curve() -> bytes:
    """The sRGB transfer function (IEC 61966-2-1) sampled on 1024 points, as a curveType."""
    points = []
    for i in range(1024):
        v = i / 1023
        linear = v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
        points.append(round(linear * 65535))
    return b"curv" + b"\0" * 4 + struct.pack(">I", len(points)) + struct.pack(f">{len(points)}H", *points)


@cache
def srgb_icc_profile() -> bytes:
    """A version 2 display ICC profile of sRGB (IEC 61966-2-1): its D50-adapted primaries, D50 white point and
    transfer curve. Built here, the same bytes every time, rather than read from a system folder."""
    curve = _srgb_curve()
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _text_description("sRGB IEC61966-2.1")),
        (b"cprt", b"text" + b"\0" * 4 + b"No copyright, use freely\0"),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", _xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", _xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table_at = 128 + 4 + 12 * len(tags)
    data = bytearray()
    entries = bytearray(struct.pack(">I", len(tags)))
    offsets: dict[bytes, int] = {}
    for sig, body in tags:
        if body not in offsets:  # the three curves share one element
            while (table_at + len(data)) % 4:
                data += b"\0"
            offsets[body] = table_at + len(data)
            data += body
        entries += sig + struct.pack(">II", offsets[body], len(body))
    while len(data) % 4:
        data += b"\0"
    size = 128 + len(entries) + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4  # preferred CMM: none
        + bytes([2, 0x10, 0, 0])  # version 2.1
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)  # a fixed creation date: the same bytes every time
        + b"acsp"
        + b"\0" * 4  # primary platform: none
        + b"\0" * 4  # flags
        + b"\0" * 8  # device manufacturer and model
        + b"\0" * 8  # device attributes
        + struct.pack(">I", 0)  # rendering intent: perceptual
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)  # the PCS illuminant, D50
        + b"\0" * 4  # creator
    )
    header += b"\0" * (128 - len(header))
    return bytes(header + entries + data)


# ---------------------------------------------------------------- metadata


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xmp(title: str, instant: datetime) -> bytes:
    """The XMP packet: PDF/A-2b identification, and the document information repeated (ISO 19005-2 6.6.3)."""
    date = _xmp_date(instant)
    # the title as the Info dictionary holds it (WinAnsiEncoding), so the two agree
    shown = _xml(title.encode("cp1252", errors="replace").decode("cp1252"))
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:pdf="http://ns.adobe.com/pdf/1.3/">\n'
        "   <pdfaid:part>2</pdfaid:part>\n"
        "   <pdfaid:conformance>B</pdfaid:conformance>\n"
        f'   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{shown}</rdf:li></rdf:Alt></dc:title>\n'
        "   <dc:format>application/pdf</dc:format>\n"
        f"   <xmp:CreateDate>{date}</xmp:CreateDate>\n"
        f"   <xmp:ModifyDate>{date}</xmp:ModifyDate>\n"
        f"   <xmp:MetadataDate>{date}</xmp:MetadataDate>\n"
        f"   <pdf:Producer>{PRODUCER}</pdf:Producer>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def _stream(dictionary: str, data: bytes) -> bytes:
    return f"<< {dictionary} /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"


# ---------------------------------------------------------------- the document


def render_pdf(lines: list[str], *, title: str, instant: datetime) -> bytes:
    """The PDF/A-2b of `lines` (A4, paged): the same arguments always give the same bytes."""
    chunks = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[]]
    n = len(chunks)
    fonts = {key: _font(file) for key, file in _FONT_FILES.items()}
    # object numbers: 1 catalog, 2 pages, 3 info, 4 metadata, 5 output intent, 6 ICC profile,
    # 7-9 and 10-12 the two fonts (font, descriptor, program), then (page, content) pairs from 13
    first_page = 13
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R /Lang (it-IT) /Metadata 4 0 R /OutputIntents [5 0 R] >>",
        2: b"<< /Type /Pages /Kids ["
        + b" ".join(f"{first_page + 2 * i} 0 R".encode() for i in range(n))
        + f"] /Count {n} >>".encode(),
        3: b"<< /Title "
        + _pdf_text(title)
        + b" /Producer "
        + _pdf_text(PRODUCER)
        + b" /CreationDate "
        + _pdf_text(_pdf_date(instant))
        + b" /ModDate "
        + _pdf_text(_pdf_date(instant))
        + b" >>",
        4: _stream("/Type /Metadata /Subtype /XML", _xmp(title, instant)),
        5: b"<< /Type /OutputIntent /S /GTS_PDFA1 /OutputConditionIdentifier (sRGB IEC61966-2.1) "
        b"/Info (sRGB IEC61966-2.1) /RegistryName (http://www.color.org) /DestOutputProfile 6 0 R >>",
        6: _stream("/N 3", srgb_icc_profile()),
    }
    for i, font in enumerate(fonts.values()):
        font_no = 7 + 3 * i
        objects[font_no] = (
            f"<< /Type /Font /Subtype /TrueType /BaseFont /{font.name} /Encoding /WinAnsiEncoding "
            f"/FirstChar 32 /LastChar 255 /Widths [{' '.join(_number(w) for w in font.widths)}] "
            f"/FontDescriptor {font_no + 1} 0 R >>"
        ).encode()
        objects[font_no + 1] = f"<< {font.descriptor} /FontFile2 {font_no + 2} 0 R >>".encode()
        objects[font_no + 2] = _stream(f"/Length1 {len(font.program)}", font.program)
    for i, chunk in enumerate(chunks):
        page_no, content_no = first_page + 2 * i, first_page + 1 + 2 * i
        objects[page_no] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {content_no} 0 R "
            "/Resources << /Font << /F1 7 0 R /F2 10 0 R >> >> >>"
        ).encode()
        objects[content_no] = _stream("", _page_stream(chunk, i + 1, n))
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
        f"trailer\n<< /Size {size} /Root 1 0 R /Info 3 0 R /ID [<{file_id}> <{file_id}>] >>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    ).encode()
    return bytes(out)
