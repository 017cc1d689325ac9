"""Bilingual messages (Italian by default, English on request via Accept-Language)."""

from __future__ import annotations

from typing import Any, Literal

Lang = Literal["it", "en"]


def pick_language(accept_language: str | None) -> Lang:
    """Italian unless the client prefers English over Italian (RFC 9110 §12.5.4 q-values)."""
    if not accept_language:
        return "it"
    best: tuple[float, Lang] | None = None
    for i, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("it", "en"):
            continue
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        score = q - i * 1e-6  # ties go to the earlier tag
        if best is None or score > best[0]:
            best = (score, primary)  # type: ignore[assignment]
    return best[1] if best else "it"


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
    "value_error": ("Valore non valido: {error}.", "Invalid value: {error}."),
    "assertion_error": ("Valore non valido.", "Invalid value."),
    "float_type": ("Deve essere un numero.", "Must be a number."),
    "float_parsing": ("Deve essere un numero.", "Must be a number."),
    "vat_number_invalid": ("Partita IVA non valida: {reason}.", "Invalid VAT number: {reason}."),
    "fiscal_code_invalid": ("Codice fiscale non valido: {reason}.", "Invalid fiscal code: {reason}."),
    "country_unknown": (
        "Paese sconosciuto: {value} (usare il codice ISO 3166 a due lettere).",
        "Unknown country: {value} (use the ISO 3166 two-letter code).",
    ),
    "province_unknown": (
        "Provincia sconosciuta: {value} (sigla di due lettere).",
        "Unknown province: {value} (two-letter code).",
    ),
    "ateco_invalid": (
        'Codice ATECO non valido: {value} (es. "28.29.30").',
        'Invalid ATECO code: {value} (e.g. "28.29.30").',
    ),
    "dates_out_of_order": ("La data di fine precede quella di inizio.", "The end date precedes the start date."),
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


def validation_message(code: str, ctx: dict[str, Any] | None, fallback_en: str, lang: Lang) -> str:
    tpl = VALIDATION_MESSAGES.get(code)
    if tpl is None:
        return fallback_en if lang == "en" else f"Valore non valido ({fallback_en})."
    text = tpl[0] if lang == "it" else tpl[1]
    try:
        return text.format(**{k: v for k, v in (ctx or {}).items()})
    except (KeyError, IndexError, ValueError):
        return text
