"""Labels of the enum values the API exposes: each value is a stable English code; people read it as an
Italian or English label. `GET /v1/labels` lists every enum field of a service's API with its values'
labels, derived from the service's own OpenAPI document (so a value without labels fails a test)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.schemas import OutModel

# code -> (Italian, English). One entry per code: a code means the same thing wherever it appears.
LABELS: dict[str, tuple[str, str]] = {
    # applications, calls, decrees, decisions, fundings
    "draft": ("Bozza", "Draft"),
    "submitted": ("Presentata", "Submitted"),
    "withdrawn": ("Ritirata", "Withdrawn"),
    "received": ("Ricevuta", "Received"),
    "upcoming": ("Di prossima apertura", "Upcoming"),
    "open": ("Aperto", "Open"),
    "closed": ("Chiuso", "Closed"),
    "issued": ("Emessa", "Issued"),
    "accepted": ("Accettata", "Accepted"),
    "renounced": ("Rinunciata", "Renounced"),
    "funded": ("Finanziata", "Funded"),
    "partially_funded": ("Finanziata in parte", "Partially funded"),
    "waiting": ("In attesa di fondi", "Waiting for funds"),
    "not_admitted": ("Non ammessa", "Not admitted"),
    "revoked": ("Revocato", "Revoked"),
    "first_come": ("A sportello", "First come, first served"),
    "ranking": ("A graduatoria", "Ranking"),
    # evaluation
    "awaiting_signature": ("In attesa della domanda firmata", "Awaiting the signed form"),
    "admissible": ("Ammissibile", "Admissible"),
    "not_admissible": ("Non ammissibile", "Not admissible"),
    "needs_review": ("Da verificare", "Needs review"),
    "evaluated": ("Valutata", "Evaluated"),
    "pass": ("Superato", "Passed"),
    "fail": ("Non superato", "Failed"),
    "deferred": ("Rinviato", "Deferred"),
    "warning": ("Avvertenza", "Warning"),
    "assigned": ("Assegnata", "Assigned"),
    "declared": ("Dichiarazione resa", "Declared"),
    "cancelled": ("Annullato", "Cancelled"),
    "passed": ("Idonea", "Passed"),
    "failed": ("Non riuscito", "Failed"),
    "third_review_needed": ("Serve una terza valutazione", "Third review needed"),
    # budget
    "commitment": ("Impegno", "Commitment"),
    "release": ("Disimpegno", "Release"),
    "amendment": ("Rettifica del bando", "Amendment"),
    # projects, claims, payments
    "active": ("Attivo", "Active"),
    "completed": ("Concluso", "Completed"),
    "full": ("Contributo pieno", "Full grant"),
    "reduced": ("Contributo ridotto", "Reduced grant"),
    "intermediate": ("Intermedia", "Intermediate"),
    "final": ("Finale", "Final"),
    "approved": ("Approvata", "Approved"),
    "partially_approved": ("Approvata in parte", "Partially approved"),
    "rejected": ("Respinto", "Rejected"),
    "invoice": ("Fattura", "Invoice"),
    "payslip": ("Busta paga", "Payslip"),
    "bank_transfer": ("Bonifico", "Bank transfer"),
    "card": ("Carta", "Card"),
    "riba": ("Ri.Ba.", "RiBa (bank receipt)"),
    "sepa_dd": ("Addebito diretto SEPA", "SEPA direct debit"),
    "cash": ("Contanti", "Cash"),
    "recognised": ("Riconosciuta", "Recognised"),
    "partially": ("Riconosciuta in parte", "Partially recognised"),
    "advance": ("Anticipo", "Advance"),
    "balance": ("Saldo", "Balance"),
    "recovery": ("Recupero", "Recovery"),
    "ordered": ("Ordinato", "Ordered"),
    "paid": ("Pagato", "Paid"),
    "applied": ("Applicata", "Applied"),
    "pending": ("In attesa", "Pending"),
    "confirmed": ("Confermata", "Confirmed"),
    "superseded": ("Sostituita", "Superseded"),
    "category": ("Categoria di spesa", "Expense category"),
    "market": ("Mercato", "Market"),
    # results and revocations
    "done": ("Raggiunto", "Done"),
    "due": ("In scadenza", "Due"),
    "overdue": ("Scaduto", "Overdue"),
    "reported": ("Comunicato", "Reported"),
    "below_threshold": ("Sotto la soglia minima", "Below the threshold"),
    "deadline_missed": ("Termine non rispettato", "Deadline missed"),
    "site_never_opened": ("Sede mai aperta", "Site never opened"),
    "false_declaration": ("Dichiarazione falsa", "False declaration"),
    "obligations_broken": ("Obblighi violati", "Obligations broken"),
    "renunciation": ("Rinuncia", "Renunciation"),
    # statistics
    "province": ("Provincia", "Province"),
    "ateco_section": ("Sezione ATECO", "ATECO section"),
    "size_class": ("Dimensione d'impresa", "Company size"),
    "continent": ("Continente", "Continent"),
    "day": ("Giorno", "Day"),
    "hour": ("Ora", "Hour"),
    # companies and partners
    "micro": ("Micro impresa", "Micro enterprise"),
    "small": ("Piccola impresa", "Small enterprise"),
    "medium": ("Media impresa", "Medium-sized enterprise"),
    "large": ("Grande impresa", "Large enterprise"),
    "linked": ("Collegata", "Linked"),
    "srl": ("S.r.l.", "S.r.l. (limited liability company)"),
    "srls": ("S.r.l.s.", "S.r.l.s. (simplified limited liability company)"),
    "spa": ("S.p.A.", "S.p.A. (joint-stock company)"),
    "sapa": ("S.a.p.a.", "S.a.p.a. (partnership limited by shares)"),
    "snc": ("S.n.c.", "S.n.c. (general partnership)"),
    "sas": ("S.a.s.", "S.a.s. (limited partnership)"),
    "ss": ("Società semplice", "Simple partnership"),
    "coop": ("Società cooperativa", "Cooperative"),
    "consorzio": ("Consorzio", "Consortium"),
    "rete_soggetto": ("Rete d'imprese con soggettività giuridica", "Business network with legal personality"),
    "ditta_individuale": ("Ditta individuale", "Sole proprietorship"),
    "other": ("Altro", "Other"),
    "chamber_of_commerce": ("Camera di commercio", "Chamber of commerce"),
    "trade_association": ("Associazione di categoria", "Trade association"),
    "agency": ("Agenzia", "Agency"),
    "partner": ("Partner", "Partner"),
    "company": ("Impresa", "Company"),
    "officer": ("Funzionario", "Officer"),
    "auditor": ("Revisore", "Auditor"),
    "service": ("Servizio", "Service"),
    "expert": ("Esperto", "Expert"),
    # expert accompaniment
    "design": ("Progettazione", "Design"),
    "monitoring": ("Monitoraggio", "Monitoring"),
    "reporting": ("Rendicontazione", "Reporting"),
    "requested": ("Richiesto", "Requested"),
    "supplier": ("Fornitore dell'impresa", "Supplier of the company"),
    "drafting_consultant": ("Consulente della stesura del piano", "Consultant for the plan's drafting"),
    "declared_conflict": ("Conflitto dichiarato", "Declared conflict"),
    "enrolled": ("Iscritto", "Enrolled"),
    "training": ("Formazione", "Training"),
    "mentoring": ("Affiancamento", "Mentoring"),
    "compliance": ("Conformità normativa", "Compliance"),
    "customs": ("Dogane", "Customs"),
    "digital_export": ("Export digitale", "Digital export"),
    "distribution_networks": ("Reti distributive", "Distribution networks"),
    "ip_protection": ("Tutela della proprietà intellettuale", "IP protection"),
    "logistics": ("Logistica", "Logistics"),
    # networking with international operators
    "buyer": ("Buyer", "Buyer"),
    "distributor": ("Distributore", "Distributor"),
    "importer": ("Importatore", "Importer"),
    "incoming_mission": ("Missione incoming", "Incoming mission"),
    "virtual_matchmaking": ("Giornata di matchmaking virtuale", "Virtual matchmaking day"),
    "proposed": ("Proposto", "Proposed"),
    "planned": ("Pianificato in agenda", "Planned by the agenda"),
    "manual": ("Inserito da un funzionario", "Set by an officer"),
    "no_follow_up": ("Nessun seguito", "No follow-up"),
    "lead": ("Contatto commerciale", "Lead"),
    "offer": ("Offerta", "Offer"),
    "contract": ("Contratto", "Contract"),
    # call rules
    "categories": ("Somma delle categorie", "Sum of the categories"),
    "eligible_total": ("Totale ammissibile", "Eligible total"),
    "direct": ("Costi diretti", "Direct costs"),
    "flat_rate": ("Forfettario", "Flat rate"),
    # webhooks and inboxes
    "delivered": ("Consegnata", "Delivered"),
    "dead": ("Non consegnabile", "Undeliverable"),
    "processed": ("Elaborato", "Processed"),
    "duplicate": ("Duplicato", "Duplicate"),
    "ignored": ("Ignorato", "Ignored"),
    # de minimis regulations (proper names: only the abbreviation of the Union changes)
    "Reg. (UE) 1407/2013": ("Reg. (UE) 1407/2013 (generale)", "Reg. (EU) 1407/2013 (general)"),
    "Reg. (UE) 1408/2013": ("Reg. (UE) 1408/2013 (agricoltura)", "Reg. (EU) 1408/2013 (agriculture)"),
    "Reg. (UE) 2023/2831": ("Reg. (UE) 2023/2831 (generale)", "Reg. (EU) 2023/2831 (general)"),
    "Reg. (UE) 2023/2832": ("Reg. (UE) 2023/2832 (SIEG)", "Reg. (EU) 2023/2832 (SGEI)"),
    "Reg. (UE) 360/2012": ("Reg. (UE) 360/2012 (SIEG)", "Reg. (EU) 360/2012 (SGEI)"),
    "Reg. (UE) 717/2014": ("Reg. (UE) 717/2014 (pesca)", "Reg. (EU) 717/2014 (fisheries)"),
}


class Label(OutModel):
    code: str = Field(description="The stable code the API sends and accepts.")
    label_it: str
    label_en: str


class EnumLabels(OutModel):
    field: str = Field(
        description="`Schema.property` of a body, or `operation_id.parameter` of a query or path parameter."
    )
    values: list[Label]


def _enum_values(node: Any) -> list[str]:
    """The string enum values anywhere under one property's schema (anyOf, items, nested); a `const` (a
    one-value Literal such as a discriminator) is not an enum."""
    out: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            out += [v for v in node["enum"] if isinstance(v, str)]
        for key in ("anyOf", "oneOf", "allOf", "items"):
            sub = node.get(key)
            for s in sub if isinstance(sub, list) else [sub]:
                out += _enum_values(s)
    return out


def enum_fields(openapi: dict[str, Any]) -> dict[str, list[str]]:
    """Every enum field of an OpenAPI document -> its values, in document order."""
    fields: dict[str, list[str]] = {}
    for name, schema in openapi.get("components", {}).get("schemas", {}).items():
        if name in ("Problem", "FieldError"):
            continue
        if values := _enum_values({k: v for k, v in schema.items() if k in ("enum", "anyOf", "oneOf")}):
            fields[name] = values
        for prop, sub in (schema.get("properties") or {}).items():
            if values := _enum_values(sub):
                fields[f"{name}.{prop}"] = values
    for item in openapi.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for param in op.get("parameters", []):
                if values := _enum_values(param.get("schema")):
                    fields[f"{op.get('operationId')}.{param['name']}"] = values
    return {f: list(dict.fromkeys(v)) for f, v in fields.items()}


def labelled(openapi: dict[str, Any]) -> list[EnumLabels]:
    """The enum fields with their labels; a code missing from LABELS is labelled with itself."""
    return [
        EnumLabels(
            field=field,
            values=[
                Label(code=c, label_it=LABELS.get(c, (c, c))[0], label_en=LABELS.get(c, (c, c))[1]) for c in values
            ],
        )
        for field, values in sorted(enum_fields(openapi).items())
    ]
