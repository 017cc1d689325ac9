"""Reading Italian electronic invoices (FatturaPA 1.2, the XML of the Sistema di Interscambio) as claim evidence.

Pure: bytes in, a frozen summary out. The XML comes from outside the desk, so it is parsed with `defusedxml`
with DTDs forbidden outright: a FatturaPA document never has one, and refusing them closes entity expansion
("billion laughs"), external entities and external DTD fetches in one rule. Signed invoices (`.p7m`, CAdES
envelopes) are not read: the beneficiary uploads the plain XML.

Tags are matched by local name: the official schema leaves the children of the root unqualified, but some
producers put everything in a default namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from shared.domain.money import ZERO

ROOT = "FatturaElettronica"

#: the sections of DatiGenerali whose `CodiceCUP` quotes the project (DatiDocumentiCorrelatiType).
CUP_SECTIONS = ("DatiOrdineAcquisto", "DatiContratto", "DatiConvenzione", "DatiRicezione", "DatiFattureCollegate")
#: free-text fields where a CUP is often written instead ("CUP: E12F25000010007").
TEXT_FIELDS = ("Causale", "Descrizione", "RiferimentoTesto", "RiferimentoAmministrazione")


class FatturaPAError(ValueError):
    """The bytes are not a readable FatturaPA document; ``code`` is stable for problem responses."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class InvoiceBody:
    """One invoice (a FatturaElettronicaBody; a file may batch several of the same supplier)."""

    number: str
    issue_date: date
    document_type: str
    currency: str
    taxable_amount: Decimal
    """Sum of ImponibileImporto over DatiRiepilogo (net of VAT)."""
    tax_amount: Decimal
    cup_codes: tuple[str, ...]
    texts: tuple[str, ...] = field(repr=False)

    def quotes_cup(self, cup: str) -> bool:
        """True if the project's CUP is in a CodiceCUP element or written in a causale/description."""
        wanted = _squash(cup)
        if not wanted:
            return False
        return any(_squash(c) == wanted for c in self.cup_codes) or any(wanted in _squash(t) for t in self.texts)


@dataclass(frozen=True)
class FatturaPA:
    version: str
    supplier_country: str
    supplier_vat: str
    """IdCodice of the supplier's IdFiscaleIVA, without the country (11 digits for an Italian supplier)."""
    supplier_name: str
    invoices: tuple[InvoiceBody, ...]

    @property
    def supplier_vat_key(self) -> str:
        """The VAT as the desk stores it: 11 digits for Italy, country prefix + code elsewhere."""
        return self.supplier_vat if self.supplier_country == "IT" else self.supplier_country + self.supplier_vat

    def invoice(self, number: str | None = None) -> InvoiceBody | None:
        """The invoice with this number (compared without case and spaces), else the only one of the file
        (whose number the caller then finds different); None when a batch has no such number."""
        if number is not None:
            for inv in self.invoices:
                if _squash(inv.number) == _squash(number):
                    return inv
        return self.invoices[0] if len(self.invoices) == 1 else None


def _squash(s: str) -> str:
    return "".join(s.split()).upper()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: Element, name: str) -> Iterator[Element]:
    return (c for c in el if _local(c.tag) == name)


def _child(el: Element | None, *path: str) -> Element | None:
    for name in path:
        if el is None:
            return None
        el = next(_children(el, name), None)
    return el


def _text(el: Element | None, *path: str) -> str | None:
    found = _child(el, *path)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def _required(el: Element | None, *path: str) -> str:
    value = _text(el, *path)
    if value is None:
        raise FatturaPAError("fatturapa_field_missing", f"missing {'/'.join(path)}")
    return value


def _amount(raw: str, where: str) -> Decimal:
    try:
        d = Decimal(raw)
    except InvalidOperation:
        raise FatturaPAError("fatturapa_amount_invalid", f"{where}: {raw!r} is not an amount") from None
    if not d.is_finite():
        raise FatturaPAError("fatturapa_amount_invalid", f"{where}: {raw!r} is not an amount")
    return d


def looks_like_fatturapa(data: bytes) -> bool:
    """A cheap sniff (no parsing): XML whose first element is FatturaElettronica, in any namespace prefix."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return False
    # skip the declaration, processing instructions and comments to the first element
    pos = 0
    while True:
        start = head.find(b"<", pos)
        if start < 0 or start + 1 >= len(head):
            return False
        nxt = head[start + 1 : start + 2]
        if nxt in (b"?", b"!"):
            end = head.find(b">", start)
            if end < 0:
                return False
            pos = end + 1
            continue
        name = head[start + 1 :].split(None, 1)[0].split(b">", 1)[0].split(b"/", 1)[0]
        return name.rsplit(b":", 1)[-1] == ROOT.encode()


def parse_fatturapa(data: bytes) -> FatturaPA:
    """Parse a FatturaPA document. Raises `FatturaPAError` (code `fatturapa_unsafe` for DTDs and entities,
    `fatturapa_malformed`, `fatturapa_not_invoice`, `fatturapa_field_missing`, `fatturapa_amount_invalid`)."""
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise FatturaPAError("fatturapa_unsafe", f"refused: {type(exc).__name__}") from None
    except ParseError as exc:
        raise FatturaPAError("fatturapa_malformed", f"not well-formed XML: {exc}") from None
    if _local(root.tag) != ROOT:
        raise FatturaPAError("fatturapa_not_invoice", f"root element is {_local(root.tag)}, not {ROOT}")
    header = _child(root, "FatturaElettronicaHeader")
    supplier = _child(header, "CedentePrestatore", "DatiAnagrafici")
    if supplier is None:
        raise FatturaPAError("fatturapa_field_missing", "missing FatturaElettronicaHeader/CedentePrestatore")
    country = _required(supplier, "IdFiscaleIVA", "IdPaese").upper()
    code = _squash(_required(supplier, "IdFiscaleIVA", "IdCodice"))
    name = _text(supplier, "Anagrafica", "Denominazione") or " ".join(
        p for p in (_text(supplier, "Anagrafica", "Nome"), _text(supplier, "Anagrafica", "Cognome")) if p
    )
    bodies = tuple(_body(b) for b in _children(root, "FatturaElettronicaBody"))
    if not bodies:
        raise FatturaPAError("fatturapa_field_missing", "no FatturaElettronicaBody")
    return FatturaPA(
        version=root.get("versione", ""),
        supplier_country=country,
        supplier_vat=code,
        supplier_name=name,
        invoices=bodies,
    )


def _body(body: Element) -> InvoiceBody:
    general = _child(body, "DatiGenerali")
    doc = _child(general, "DatiGeneraliDocumento")
    raw_date = _required(doc, "Data")
    try:
        issued = date.fromisoformat(raw_date)
    except ValueError:
        raise FatturaPAError("fatturapa_date_invalid", f"Data {raw_date!r} is not a date") from None
    taxable = tax = ZERO
    goods = _child(body, "DatiBeniServizi")
    summaries = list(_children(goods, "DatiRiepilogo")) if goods is not None else []
    if not summaries:
        raise FatturaPAError("fatturapa_field_missing", "missing DatiBeniServizi/DatiRiepilogo")
    for s in summaries:
        taxable += _amount(_required(s, "ImponibileImporto"), "ImponibileImporto")
        tax += _amount(_text(s, "Imposta") or "0", "Imposta")
    cups: list[str] = []
    if general is not None:
        for section in CUP_SECTIONS:
            for el in _children(general, section):
                cups.extend(c.text.strip() for c in _children(el, "CodiceCUP") if c.text and c.text.strip())
    texts = [el.text for el in body.iter() if _local(el.tag) in TEXT_FIELDS and el.text]
    return InvoiceBody(
        number=_required(doc, "Numero"),
        issue_date=issued,
        document_type=_text(doc, "TipoDocumento") or "",
        currency=(_text(doc, "Divisa") or "").upper(),
        taxable_amount=taxable,
        tax_amount=tax,
        cup_codes=tuple(cups),
        texts=tuple(texts),
    )
