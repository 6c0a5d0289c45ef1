"""Pure text helpers: accent folding, slugs, and reading numbers and periods as people type them."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

_PREFIXES = re.compile(r"^(cum cong nghiep|cum cn|ccn)\s+", re.IGNORECASE)
_VILLAGE = re.compile(r"^lang nghe\s+", re.IGNORECASE)
_PHASE = re.compile(r"\b(?:giai doan|gd)\s*(\d)\b", re.IGNORECASE)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4}


def fold(text: str) -> str:
    """Lowercase, strip Vietnamese diacritics (đ → d), collapse white space."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.lower().split())


def bare_cluster_name(name: str) -> str:
    """A cluster's name folded and without the generic 'Cụm công nghiệp (làng nghề)' prefix."""
    folded = fold(name)
    folded = _PREFIXES.sub("", folded)
    folded = _VILLAGE.sub("", folded)
    return folded


def cluster_slug(name: str) -> str:
    """Stable code of a cluster from its printed name: `Phú Thị - GD2` → `phu-thi-gd2`."""
    folded = _PHASE.sub(r"gd\1", bare_cluster_name(name))
    return _NON_ALNUM.sub("-", folded).strip("-")


def slug(text: str) -> str:
    return _NON_ALNUM.sub("-", fold(text)).strip("-")


SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


_PLAIN_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
MAX_NUMBER_CHARS = 32  # more digits than anyone types; keeps Decimal's work small
MIN_YEAR, MAX_YEAR = 2000, 2100  # the years a report can speak of


def parse_decimal(raw: str) -> Decimal:
    """Read `68,45`, `68.45`, `68,45 %`, `88,44%.` or `1.234,5`; ValueError if not a plain
    number (no exponent, NaN or infinity, at most MAX_NUMBER_CHARS characters). `-0` is 0."""
    text = raw.strip().rstrip(".").replace("%", "").replace("\u00a0", "").replace(" ", "")
    if not text:
        raise ValueError("empty")
    if "," in text and "." in text:
        # Vietnamese grouping: 1.234,5
        text = text.replace(".", "").replace(",", ".")
    else:
        text = text.replace(",", ".")
    if len(text) > MAX_NUMBER_CHARS or not _PLAIN_NUMBER.match(text):
        raise ValueError(raw)
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(raw) from exc
    return value.copy_abs() if value.is_zero() else value


def decimals(value: Decimal) -> int:
    """How many digits a number has after the point, trailing zeros not counted."""
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def parse_percent(raw: str) -> Decimal:
    """A percentage from 0 to 100 with at most two decimals."""
    value = parse_decimal(raw)
    if value < 0 or value > 100 or decimals(value) > 2:
        raise ValueError(raw)
    return value


_MONTH_ISO = re.compile(r"^(\d{4})-(\d{1,2})$")
_MONTH_VN = re.compile(r"^(?:th[aá]ng\s*)?(\d{1,2})\s*/\s*(\d{4})$", re.IGNORECASE)
_QUARTER_ISO = re.compile(r"^(\d{4})-Q([1-4])$", re.IGNORECASE)
_QUARTER_VN = re.compile(r"^(?:qu[yý]\s*)?(IV|III|II|I|[1-4])\s*/\s*(\d{4})$", re.IGNORECASE)


def parse_month(raw: str) -> str:
    """`2021-3`, `3/2021`, `Tháng 3/2021` → `2021-03`."""
    text = " ".join(raw.strip().split())
    if m := _MONTH_ISO.match(text):
        year, month = int(m.group(1)), int(m.group(2))
    elif m := _MONTH_VN.match(text):
        month, year = int(m.group(1)), int(m.group(2))
    else:
        raise ValueError(raw)
    if not 1 <= month <= 12 or not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(raw)
    return f"{year:04d}-{month:02d}"


def parse_quarter(raw: str) -> str:
    """`2021-Q4`, `IV/2021`, `Quý IV/2021` → `2021-Q4`."""
    text = " ".join(raw.strip().split())
    if m := _QUARTER_ISO.match(text):
        return f"{int(m.group(1)):04d}-Q{m.group(2)}"
    if m := _QUARTER_VN.match(text):
        q = m.group(1).upper()
        number = _ROMAN[q] if q in _ROMAN else int(q)
        return f"{int(m.group(2)):04d}-Q{number}"
    raise ValueError(raw)
