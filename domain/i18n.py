"""User-facing words and numbers: Babel catalogs (vi default, en) and Vietnamese formatting."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

LOCALES = Path(__file__).parent / "locales"
SUPPORTED = ("vi", "en")
DOMAIN = "messages"

Gettext = Callable[[str], str]


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return message


@cache
def translations(locale: str) -> NullTranslations:
    """The catalog for `locale`, compiled in memory from its .po file (no build step)."""
    po = LOCALES / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


def gettext_for(locale: str) -> Gettext:
    return translations(locale).gettext


def number(value: Decimal | float | int, locale: str = "vi") -> str:
    """`68.45` → `68,45` (vi) / `68.45` (en); at most two decimals."""
    return format_decimal(value, format="#,##0.##", locale=locale)


def percent(value: Decimal | float | int, locale: str = "vi") -> str:
    """A value already in percent: `68.45` → `68,45 %` (vi) / `68.45%` (en)."""
    text = number(value, locale)
    return f"{text} %" if locale == "vi" else f"{text}%"


def day(value: date, locale: str = "vi") -> str:
    return format_date(value, "dd/MM/yyyy", locale=locale)


def month(iso: str, locale: str = "vi") -> str:
    """`2021-03` → `03/2021`."""
    year, mon = iso.split("-")
    return f"{mon}/{year}"


def quarter(iso: str, locale: str = "vi") -> str:
    """`2021-Q4` → `Quý IV/2021` (vi) / `Q4 2021` (en)."""
    year, q = iso.split("-Q")
    if locale == "vi":
        return f"Quý {('I', 'II', 'III', 'IV')[int(q) - 1]}/{year}"
    return f"Q{q} {year}"
