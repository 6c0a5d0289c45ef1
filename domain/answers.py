"""Reading answers as people type them and writing them back the Vietnamese way."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal

from domain import i18n
from domain.forms import Question
from domain.text import MAX_YEAR, MIN_YEAR, decimals, fold, parse_decimal, parse_month

YES = {"co", "c", "yes", "y", "roi", "da", "dong y", "ok", "x", "1", "true"}
NO = {"khong", "k", "ko", "no", "n", "chua", "0", "false"}
_DATE = re.compile(r"^(\d{1,2})\s*[/.\-]\s*(\d{1,2})(?:\s*[/.\-]\s*(\d{2,4}))?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
# What a figure may be: at most 12 digits before the point and 2 (percent) or 4 after, so
# that a figure stays a figure wherever it is summed or stored (a spreadsheet, PostgreSQL).
MAX_ABS_NUMBER = Decimal(10) ** 12
MAX_DECIMALS = {"percent": 2, "number": 4}

# Default hints per type, shown when an answer cannot be read (a form may give its own).
HINTS = {
    "percent": i18n.N_("Please send a number from 0 to 100, e.g. 45 or 68,45."),
    "number": i18n.N_("Please send a number, e.g. 12."),
    "date": i18n.N_("Please send a date as day/month/year, e.g. 25/06/2021."),
    "month": i18n.N_("Please send a month as month/year, e.g. 6/2021."),
    "yesno": i18n.N_("Please tap Yes or No."),
    "choice": i18n.N_("Please tap one of the buttons."),
    "text": i18n.N_("Please type your answer in words, up to {limit} characters."),
    "photos": i18n.N_("Please send photos, or tap Done when you are done."),
    "location": i18n.N_("Please share a location, or tap Skip."),
}


def fold_word(text: str) -> str:
    """A typed word compared without accents, case or trailing punctuation."""
    return fold(text).strip(" .!")


class Unreadable(ValueError):
    """The answer does not fit the question; the message says how to answer."""


def hint(question: Question, locale: str) -> str:
    if question.hint is not None:
        return question.hint.get(locale)
    return i18n.gettext_for(locale)(HINTS[question.type]).format(limit=question.max_length)


def clean_text(text: str) -> str:
    """Typed text without control characters (NUL, escapes; a tab is a space, CR LF a line
    break) or lone surrogates, which the store cannot hold or a workbook would choke on."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return "".join(
        ch for ch in text if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cs")
    ).strip()


def parse(question: Question, text: str, today: date) -> str:
    """The canonical stored form of an answer: numbers as plain decimals, dates ISO, yes/no as
    `yes`/`no`, choices by value. Raises Unreadable."""
    raw = clean_text(text)
    if not raw:
        raise Unreadable(question.type)
    kind = question.type
    if kind in ("percent", "number"):
        try:
            value = parse_decimal(raw)
        except ValueError as exc:
            raise Unreadable(kind) from exc
        if abs(value) >= MAX_ABS_NUMBER or decimals(value) > MAX_DECIMALS[kind]:
            raise Unreadable(kind)
        low = (
            question.min if question.min is not None else Decimal(0) if kind == "percent" else None
        )
        high = (
            question.max
            if question.max is not None
            else Decimal(100)
            if kind == "percent"
            else None
        )
        if (low is not None and value < low) or (high is not None and value > high):
            raise Unreadable(kind)
        return _plain(value)
    if kind == "yesno":
        word = fold(raw).rstrip(".!")
        if word in YES:
            return "yes"
        if word in NO:
            return "no"
        raise Unreadable(kind)
    if kind == "choice":
        folded = fold(raw)
        for index, choice in enumerate(question.choices, start=1):
            if folded in (fold(choice.vi), fold(choice.en), choice.value, str(index)):
                return choice.value
        raise Unreadable(kind)
    if kind == "date":
        return _date(raw, today).isoformat()
    if kind == "month":
        try:
            return parse_month(raw)  # refuses years outside MIN_YEAR..MAX_YEAR
        except ValueError as exc:
            raise Unreadable(kind) from exc
    if kind == "text":
        if len(raw) > question.max_length:
            raise Unreadable(kind)
        return raw
    raise Unreadable(kind)  # photos and location are not typed


def _date(raw: str, today: date) -> date:
    try:
        if m := _ISO_DATE.match(raw):
            return _in_range(date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
        if m := _DATE.match(raw):
            year = int(m.group(3)) if m.group(3) else today.year
            if len(m.group(3) or "") == 2:
                year += 2000
            return _in_range(date(year, int(m.group(2)), int(m.group(1))))
    except ValueError as exc:
        raise Unreadable("date") from exc
    raise Unreadable("date")


def _in_range(day: date) -> date:
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise Unreadable("date")
    return day


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def display(question: Question, value: str | None, locale: str) -> str:
    """An answer as the person reads it: `68,45 %`, `25/06/2021`, `Có`, the choice's label."""
    _ = i18n.gettext_for(locale)
    if value is None or value == "":
        return _("(skipped)")
    kind = question.type
    if kind == "percent":
        return i18n.percent(Decimal(value), locale)
    if kind == "number":
        unit = f" {question.unit.get(locale)}" if question.unit else ""
        return i18n.number(Decimal(value), locale) + unit
    if kind == "yesno":
        return _("Yes") if value == "yes" else _("No")
    if kind == "choice":
        for choice in (*question.choices, *question.formerly):
            if choice.value == value:
                return choice.label(locale)
        return value
    if kind == "date":
        return i18n.day(date.fromisoformat(value), locale)
    if kind == "month":
        return i18n.month(value, locale)
    if kind == "photos":
        return _("{count} photo(s)").format(count=value)
    if kind == "location":
        return _("shared location")
    return value
