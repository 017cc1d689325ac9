"""Bilingual messages (Italian by default, English on request via Accept-Language)."""

from __future__ import annotations

from typing import Any, Literal

Lang = Literal["it", "en"]


SUPPORTED: tuple[Lang, ...] = ("it", "en")  # the first is the default
DEFAULT: Lang = "it"


def _ranges(accept_language: str) -> list[tuple[str, float]]:
    """The header's language ranges with their weights (RFC 9110 §12.4.2, §12.5.4), in the order sent;
    a malformed weight makes its range unacceptable (q=0)."""
    out = []
    for part in accept_language.split(","):
        tag, *params = part.split(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        q = 1.0
        for p in params:
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0
                q = q if 0.0 <= q <= 1.0 else 0.0
        out.append((tag, q))
    return out


def negotiate(accept_language: str | None) -> tuple[Lang, bool]:
    """(language, acceptable): the supported language the client weights highest. A range counts for the
    language of its primary subtag (`it-IT` for it, `en-GB` for en); `*` weights every language no range
    names; q=0 excludes. Ties go to the range sent first, then to Italian. With no header every language is
    acceptable; when neither Italian nor English is, the answer is Italian and `acceptable` is False."""
    if not accept_language or not accept_language.strip():
        return DEFAULT, True
    ranges = _ranges(accept_language)
    if not ranges:
        return DEFAULT, True
    star = next((q for tag, q in ranges if tag == "*"), None)
    best: tuple[float, int, Lang] | None = None
    for lang in SUPPORTED:
        if any(tag == lang and q == 0 for tag, q in ranges):
            continue  # `it;q=0` excludes Italian whatever `it-IT` says
        named = [(i, q) for i, (tag, q) in enumerate(ranges) if tag.split("-")[0] == lang]
        if named:  # the highest weight among its ranges, the earliest on a tie
            i, q = max(named, key=lambda x: (x[1], -x[0]))
        elif star is not None:
            i, q = len(ranges), star
        else:
            continue
        if q <= 0:
            continue
        key = (q, -i, lang)
        if best is None or (key[0], key[1]) > (best[0], best[1]):
            best = key
    return (best[2], True) if best else (DEFAULT, False)


def pick_language(accept_language: str | None) -> Lang:
    """The negotiated language (see `negotiate`); Italian when nothing acceptable is supported."""
    return negotiate(accept_language)[0]


# Pydantic's error types (and ours) -> (Italian, English) templates over the error's ctx.
VALIDATION_MESSAGES: dict[str, tuple[str, str]] = {
    "missing": ("Campo obbligatorio mancante.", "Field required."),
    "extra_forbidden": ("Campo non previsto.", "Unexpected field."),
    "string_type": ("Deve essere un testo.", "Must be a string."),
    "string_too_short": ("Testo troppo corto (minimo {min_length}).", "Too short (minimum {min_length})."),
    "string_too_long": ("Testo troppo lungo (massimo {max_length}).", "Too long (maximum {max_length})."),
    "string_pattern_mismatch": ("Formato non valido.", "Invalid format."),
    "int_type": ("Deve essere un numero intero.", "Must be an integer."),
    "int_parsing": ("Deve essere un numero intero.", "Must be an integer."),
    "int_from_float": ("Deve essere un numero intero.", "Must be an integer."),
    "bool_type": ("Deve essere vero o falso.", "Must be a boolean."),
    "bool_parsing": ("Deve essere vero o falso.", "Must be a boolean."),
    "greater_than": ("Deve essere maggiore di {gt}.", "Must be greater than {gt}."),
    "greater_than_equal": ("Deve essere maggiore o uguale a {ge}.", "Must be greater than or equal to {ge}."),
    "less_than": ("Deve essere minore di {lt}.", "Must be less than {lt}."),
    "less_than_equal": ("Deve essere minore o uguale a {le}.", "Must be less than or equal to {le}."),
    "decimal_type": (
        'Importo non valido: usare una stringa come "1234.50".',
        'Invalid amount: use a string such as "1234.50".',
    ),
    "decimal_parsing": (
        'Importo non valido: usare una stringa come "1234.50".',
        'Invalid amount: use a string such as "1234.50".',
    ),
    "decimal_max_places": (
        "Al massimo {decimal_places} decimali (centesimi).",
        "At most {decimal_places} decimal places (cents).",
    ),
    "decimal_max_digits": ("Al massimo {max_digits} cifre.", "At most {max_digits} digits."),
    "decimal_whole_digits": ("Troppe cifre intere.", "Too many whole digits."),
    "money_not_string": (
        'Gli importi vanno inviati come stringhe (es. "1234.50"), non come numeri.',
        'Amounts must be sent as strings (e.g. "1234.50"), not as numbers.',
    ),
    "date_type": ("Data non valida (AAAA-MM-GG).", "Invalid date (YYYY-MM-DD)."),
    "date_parsing": ("Data non valida (AAAA-MM-GG).", "Invalid date (YYYY-MM-DD)."),
    "date_from_datetime_parsing": ("Data non valida (AAAA-MM-GG).", "Invalid date (YYYY-MM-DD)."),
    "datetime_type": ("Istante non valido (ISO 8601).", "Invalid instant (ISO 8601)."),
    "datetime_parsing": ("Istante non valido (ISO 8601).", "Invalid instant (ISO 8601)."),
    "datetime_from_date_parsing": ("Istante non valido (ISO 8601).", "Invalid instant (ISO 8601)."),
    "timezone_aware": ("L'istante deve indicare il fuso orario.", "The instant must carry a time zone."),
    "literal_error": ("Valore non ammesso: {expected}.", "Value not allowed: {expected}."),
    "enum": ("Valore non ammesso: {expected}.", "Value not allowed: {expected}."),
    "list_type": ("Deve essere un elenco.", "Must be a list."),
    "too_short": ("Servono almeno {min_length} elementi.", "At least {min_length} items are needed."),
    "too_long": ("Al massimo {max_length} elementi.", "At most {max_length} items."),
    "dict_type": ("Deve essere un oggetto.", "Must be an object."),
    "model_type": ("Deve essere un oggetto.", "Must be an object."),
    "model_attributes_type": ("Deve essere un oggetto.", "Must be an object."),
    "uuid_type": ("Identificativo non valido.", "Invalid identifier."),
    "uuid_parsing": ("Identificativo non valido.", "Invalid identifier."),
    "json_invalid": ("JSON non valido.", "Invalid JSON."),
    "json_type": ("JSON non valido.", "Invalid JSON."),
    "value_error": ("Valore non valido.", "Invalid value."),
    "assertion_error": ("Valore non valido.", "Invalid value."),
    "float_type": ("Deve essere un numero.", "Must be a number."),
    "float_parsing": ("Deve essere un numero.", "Must be a number."),
    "vat_number_invalid": ("Partita IVA non valida: {reason}.", "Invalid VAT number: {reason}."),
    "fiscal_code_invalid": ("Codice fiscale non valido: {reason}.", "Invalid fiscal code: {reason}."),
    "holder_tax_code_invalid": (
        "Partita IVA o codice fiscale non validi: {reason}.",
        "Invalid VAT number or fiscal code: {reason}.",
    ),
    "iban_invalid": ("IBAN non valido: {reason}.", "Invalid IBAN: {reason}."),
    "iban_missing": ("Il progetto non ha un IBAN.", "The project has no IBAN."),
    "iban_not_italian": (
        "I pagamenti vanno su un conto italiano: l'IBAN deve iniziare con IT.",
        "Payments go to an Italian account: the IBAN must start with IT.",
    ),
    "number_not_string": (
        'I valori vanno inviati come stringhe (es. "12.50").',
        'Values must be sent as strings (e.g. "12.50").',
    ),
    "decision_selection": (
        "Indicare application_ids oppure all_pending: true, non entrambi.",
        "Give either application_ids or all_pending: true, not both.",
    ),
    "country_unknown": (
        "Paese sconosciuto: {value} (usare il codice ISO 3166 a due lettere).",
        "Unknown country: {value} (use the ISO 3166 two-letter code).",
    ),
    "language_unknown": (
        "Lingua sconosciuta: {value} (usare il codice ISO 639-1 di due lettere).",
        "Unknown language: {value} (use the ISO 639-1 two-letter code).",
    ),
    "duplicate_values": ("L'elenco {path} ripete un valore.", "The list {path} repeats a value."),
    "province_unknown": (
        "Provincia sconosciuta: {value} (sigla di due lettere).",
        "Unknown province: {value} (two-letter code).",
    ),
    "ateco_invalid": (
        'Codice ATECO non valido: {value} (es. "28.29.30").',
        'Invalid ATECO code: {value} (e.g. "28.29.30").',
    ),
    "dates_out_of_order": ("La data di fine precede quella di inizio.", "The end date precedes the start date."),
    "slots_overlap": ("Due fasce orarie si sovrappongono.", "Two time slots overlap."),
    "operators_repeated": ("Un operatore è indicato due volte.", "An operator is listed twice."),
    "one_of_required": ("Indicare o company_id o operator_id.", "Name either company_id or operator_id."),
    "contract_terms_required": (
        "Un contratto richiede contract_value e market.",
        "A contract needs contract_value and market.",
    ),
    "contract_terms_not_allowed": (
        "Solo un contratto ha valore e mercato.",
        "Only a contract has a value and a market.",
    ),
    "duplicate_value": ("Valore ripetuto: {value}.", "Repeated value: {value}."),
    "share_out_of_range": ("La quota deve essere tra 0 e 1.", "The share must be between 0 and 1."),
    "date_in_future": ("La data non può essere nel futuro.", "The date cannot be in the future."),
    "year_out_of_range": ("Anno fuori intervallo.", "Year out of range."),
    "share_relation_mismatch": (
        "La quota non corrisponde alla relazione (associata 25-50%, collegata oltre 50%).",
        "The share does not match the relation (partner 25-50%, linked over 50%).",
    ),
    "decimal_not_string": (
        'I numeri decimali vanno inviati come stringhe (es. "12.50").',
        'Decimal numbers must be sent as strings (e.g. "12.50").',
    ),
    "vat_number_immutable": ("La partita IVA non si può cambiare.", "The VAT number cannot change."),
    "currency_not_eur": ("Gli importi sono in euro.", "Amounts are in euros."),
    "control_character": (
        "Carattere di controllo non ammesso (U+{codepoint}).",
        "Control character not allowed (U+{codepoint}).",
    ),
}


# Why python-stdnum refused a number: its exception classes -> a reason code -> (Italian, English).
# The library's own (English) message is never shown.
STDNUM_REASONS: dict[str, tuple[str, str]] = {
    "invalid_checksum": ("la cifra di controllo non corrisponde", "the check digit does not match"),
    "invalid_length": ("il numero di caratteri è errato", "it has the wrong number of characters"),
    "invalid_format": ("il formato non è valido", "its format is invalid"),
    "invalid_component": ("una sua parte non è valida", "one of its parts is invalid"),
    "not_a_string": ("deve essere un testo", "it must be a string"),
    "foreign_tax_number": (
        "prefisso di paese sconosciuto o numero estero malformato",
        "unknown country prefix or malformed foreign tax number",
    ),
    "invalid": ("il numero non è valido", "the number is invalid"),
}


def stdnum_reason(exc: Exception) -> str:
    """The reason code (a key of STDNUM_REASONS) of a python-stdnum ValidationError."""
    from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength

    for cls, code in (
        (InvalidChecksum, "invalid_checksum"),
        (InvalidLength, "invalid_length"),
        (InvalidComponent, "invalid_component"),
        (InvalidFormat, "invalid_format"),
    ):
        if isinstance(exc, cls):
            return code
    return "invalid"


def validation_message(code: str, ctx: dict[str, Any] | None, fallback_en: str, lang: Lang) -> str:
    """The message of a validation error in `lang` alone: our catalogue's text over the error's context (a
    `reason` is a STDNUM_REASONS code, translated too). A code missing from the catalogue falls back to a
    generic Italian text, never to the library's English one."""
    tpl = VALIDATION_MESSAGES.get(code)
    if tpl is None:
        return (fallback_en or "Invalid value.") if lang == "en" else "Valore non valido."
    text = tpl[0] if lang == "it" else tpl[1]
    values = dict(ctx or {})
    if lang == "it" and isinstance(values.get("expected"), str):  # pydantic lists choices as "'a', 'b' or 'c'"
        head, sep, last = values["expected"].rpartition("' or '")
        values["expected"] = f"{head}' o '{last}" if sep else values["expected"]
    if "reason" in values:
        reason = STDNUM_REASONS.get(str(values["reason"]), STDNUM_REASONS["invalid"])
        values["reason"] = reason[0] if lang == "it" else reason[1]
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        return text


_TEXT_TYPES = (b"application/json", b"application/problem+json")


class ContentLanguageMiddleware:
    """Says which language a response's text is in: `Content-Language` (the negotiated one, Italian when the
    client accepts neither Italian nor English) and `Vary: Accept-Language` on every JSON or problem body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"accept-language"), None)
        lang = pick_language(header.decode("latin-1") if header is not None else None).encode("ascii")

        async def send_with_language(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.split(b";")[0].strip().lower() in _TEXT_TYPES:
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-language"]
                    headers.append((b"content-language", lang))
                    vary = [v for k, v in headers if k.lower() == b"vary"]
                    if not any(b"accept-language" in v.lower() or v.strip() == b"*" for v in vary):
                        headers.append((b"vary", b"Accept-Language"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_language)
