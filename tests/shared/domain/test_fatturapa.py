"""FatturaPA evidence: a realistic 1.2 invoice is read; hostile or broken XML is refused."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from shared.domain.fatturapa import FatturaPAError, looks_like_fatturapa, parse_fatturapa

SAMPLE = (Path(__file__).parents[2] / "fixtures" / "fatturapa_sample.xml").read_bytes()
CUP = "E18H25000120007"


def test_the_sample_is_read_for_supplier_number_date_amount_and_cup() -> None:
    doc = parse_fatturapa(SAMPLE)
    assert doc.version == "FPR12"
    assert (doc.supplier_country, doc.supplier_vat, doc.supplier_vat_key) == ("IT", "01234560157", "01234560157")
    assert doc.supplier_name == "Fiere e Mercati Esteri S.r.l."
    [inv] = doc.invoices
    assert inv.number == "2025/0147"
    assert inv.issue_date == date(2025, 4, 15)
    assert inv.document_type == "TD01" and inv.currency == "EUR"
    assert inv.taxable_amount == Decimal("4000.00")  # 3000 + 1000 over the two DatiRiepilogo
    assert inv.tax_amount == Decimal("880.00")
    assert inv.cup_codes == (CUP,)
    assert inv.quotes_cup(CUP)
    assert not inv.quotes_cup("J11B25000990001")
    assert doc.invoice("2025 / 0147".replace(" ", "")) is inv


def test_a_cup_written_in_the_causale_counts() -> None:
    xml = SAMPLE.replace(b"<CodiceCUP>E18H25000120007</CodiceCUP>", b"")
    xml = xml.replace(b"Verso Nuovi Mercati</Causale>", b"Verso Nuovi Mercati - CUP: E18H 2500 0120 007</Causale>")
    inv = parse_fatturapa(xml).invoices[0]
    assert inv.cup_codes == ()
    assert inv.quotes_cup(CUP)


def test_no_cup_anywhere_is_seen() -> None:
    xml = SAMPLE.replace(b"<CodiceCUP>E18H25000120007</CodiceCUP>", b"")
    assert not parse_fatturapa(xml).invoices[0].quotes_cup(CUP)


def test_a_default_namespace_and_a_foreign_supplier_are_read() -> None:
    xml = SAMPLE.replace(b"<p:FatturaElettronica ", b'<FatturaElettronica xmlns="urn:x" ')
    xml = xml.replace(b"</p:FatturaElettronica>", b"</FatturaElettronica>")
    xml = xml.replace(
        b"<IdPaese>IT</IdPaese>\n          <IdCodice>01234560157</IdCodice>\n        </IdFiscaleIVA>\n"
        b"        <CodiceFiscale>",
        b"<IdPaese>DE</IdPaese>\n          <IdCodice>136695976</IdCodice>\n        </IdFiscaleIVA>\n"
        b"        <CodiceFiscale>",
    )
    doc = parse_fatturapa(xml)
    assert doc.supplier_vat_key == "DE136695976"
    assert doc.invoices[0].taxable_amount == Decimal("4000.00")


def test_a_batch_of_invoices_is_searched_by_number() -> None:
    start = SAMPLE.index(b"<FatturaElettronicaBody>")
    end = SAMPLE.index(b"</FatturaElettronicaBody>") + len(b"</FatturaElettronicaBody>")
    second = (
        SAMPLE[start:end]
        .replace(b"2025/0147", b"2025/0148")
        .replace(b"3000.00</ImponibileImporto>", b"500.00</ImponibileImporto>")
    )
    doc = parse_fatturapa(SAMPLE[:end] + second + SAMPLE[end:])
    assert [i.number for i in doc.invoices] == ["2025/0147", "2025/0148"]
    assert doc.invoice("2025/0148") is doc.invoices[1]
    assert doc.invoices[1].taxable_amount == Decimal("1500.00")
    assert doc.invoice("9999") is None  # a batch without that number


def test_sniffing_finds_the_root_element_past_declaration_and_comments() -> None:
    assert looks_like_fatturapa(SAMPLE)
    assert looks_like_fatturapa(b"\xef\xbb\xbf<?xml version='1.0'?><!-- x --><FatturaElettronica/>")
    assert not looks_like_fatturapa(b"<?xml version='1.0'?><Invoice xmlns='urn:oasis'/>")
    assert not looks_like_fatturapa(b"%PDF-1.7")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE FatturaElettronica [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<FatturaElettronica><FatturaElettronicaHeader>&lol9;</FatturaElettronicaHeader></FatturaElettronica>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE FatturaElettronica [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<FatturaElettronica><FatturaElettronicaHeader>&xxe;</FatturaElettronicaHeader></FatturaElettronica>"""


@pytest.mark.parametrize(
    "xml",
    [BILLION_LAUGHS, XXE, b'<!DOCTYPE FatturaElettronica SYSTEM "http://example.invalid/x.dtd"><FatturaElettronica/>'],
)
def test_an_xml_bomb_or_external_entity_is_refused_before_expansion(xml: bytes) -> None:
    with pytest.raises(FatturaPAError) as e:
        parse_fatturapa(xml)
    assert e.value.code == "fatturapa_unsafe"


@pytest.mark.parametrize(
    ("xml", "code"),
    [
        (b"<FatturaElettronica><unclosed>", "fatturapa_malformed"),
        (b"<Invoice/>", "fatturapa_not_invoice"),
        (b"<FatturaElettronica><FatturaElettronicaHeader/></FatturaElettronica>", "fatturapa_field_missing"),
    ],
)
def test_broken_documents_are_refused_with_a_stable_code(xml: bytes, code: str) -> None:
    with pytest.raises(FatturaPAError) as e:
        parse_fatturapa(xml)
    assert e.value.code == code


def test_a_bad_amount_or_date_is_refused() -> None:
    with pytest.raises(FatturaPAError) as e:
        parse_fatturapa(SAMPLE.replace(b"<ImponibileImporto>1000.00", b"<ImponibileImporto>mille"))
    assert e.value.code == "fatturapa_amount_invalid"
    with pytest.raises(FatturaPAError) as e:
        parse_fatturapa(SAMPLE.replace(b"<Data>2025-04-15</Data>", b"<Data>15/04/2025</Data>"))
    assert e.value.code == "fatturapa_date_invalid"
