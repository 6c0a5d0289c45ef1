"""Every button's payload, written and read in this one place.

A payload is what a button carries back: Telegram's callback data, or the payload a typed key
stands for on a channel without buttons (handlers.choices). Each kind is a typed value here;
`encode` writes it, `read` reads what came back. Anything a person sends is input, a payload
included (a Telegram client can send any callback data): `decode` returns None for whatever is
not exactly a payload this module writes, and the handlers answer that with the polite refusal.
Whether a well-formed payload applies (the question being asked, a period already open, a
cluster the person may see) is for the handler to say.

| kind | text | value |
|---|---|---|
| pick the subject | `subject:<i>` | PickSubject |
| a reminder's report | `report:<subject>:<YYYY-MM>` | OpenReport |
| an answer | `a:<question>:yes`, `a:<question>:no`, `a:<question>:<i>` | YesNo, Choose |
| unchanged, skip, photos done | `keep:<q>`, `skip:<q>`, `done:<q>` | Keep, Skip, Done |
| a figure went down | `back:<q>:yes`, `back:<q>:no` | Back |
| the summary | `edit:<n>`, `submit` | Edit, Submit |
| the language | `lang:<vi|en>` | Language |
| paper copies | `paper:<YYYY-MM>`, `paperok:<id>`, `paperno:<id>` | PaperClaim, PaperDecision |
| who has not reported | `missing:<YYYY-MM>` | Missing |
| a cluster's card | `cluster:<code>` | ClusterCard |
| review a report | `review:<id>`, `accept:<id>`, `changes:<id>` | ReviewReport, ReviewDecision |
| correct a report sent back | `fix:<id>` | FixReport |

Telegram takes at most 64 bytes of callback data: `encode` refuses a longer payload (a
programming error: a button the messenger would refuse), and anything it writes reads back as
the same value. Read payloads are not held to that limit: each kind's own shape bounds it, and a
forged cluster code is answered as an unknown cluster, as typed text would be."""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from domain import i18n
from domain.calendar import Period
from domain.subjects import Subject
from domain.text import SLUG_RE

LIMIT = 64  # bytes of Telegram's callback_data
MAX_CODE = 64  # characters of a cluster's code (clusters.code)


class Kind(enum.StrEnum):
    """What a payload is, by its first word; a malformed payload still has its kind."""

    SUBJECT = "subject"
    REPORT = "report"
    ANSWER = "a"
    KEEP = "keep"
    SKIP = "skip"
    DONE = "done"
    BACK = "back"
    EDIT = "edit"
    SUBMIT = "submit"
    LANGUAGE = "lang"
    PAPER = "paper"
    PAPER_OK = "paperok"
    PAPER_NO = "paperno"
    MISSING = "missing"
    CLUSTER = "cluster"
    REVIEW = "review"
    ACCEPT = "accept"
    CHANGES = "changes"
    FIX = "fix"


@dataclass(frozen=True)
class PickSubject:
    """The i-th of the subjects the person reports on (handlers.subjects.subjects_of)."""

    index: int


@dataclass(frozen=True)
class OpenReport:
    """A reminder's button: open (or resume) the report on `subject` for `period`."""

    subject: Subject
    period: Period


@dataclass(frozen=True)
class YesNo:
    question: str
    yes: bool


@dataclass(frozen=True)
class Choose:
    """The i-th choice of a choice question."""

    question: str
    index: int


@dataclass(frozen=True)
class Keep:
    """The answer of the last report, unchanged."""

    question: str


@dataclass(frozen=True)
class Skip:
    question: str


@dataclass(frozen=True)
class Done:
    """No more photos."""

    question: str


@dataclass(frozen=True)
class Back:
    """The figure that went down: right (`confirmed`), or to be entered again."""

    question: str
    confirmed: bool


@dataclass(frozen=True)
class Edit:
    """Change the n-th answer of the summary (from 1)."""

    number: int


@dataclass(frozen=True)
class Submit:
    pass


@dataclass(frozen=True)
class Language:
    locale: str


@dataclass(frozen=True)
class PaperClaim:
    """ "Sent on paper": the reporter's reports for `period`."""

    period: Period


@dataclass(frozen=True)
class PaperDecision:
    """An admin's answer to a paper claim."""

    receipt: int
    received: bool


@dataclass(frozen=True)
class Missing:
    """Who has not reported for `period`."""

    period: Period


@dataclass(frozen=True)
class ClusterCard:
    """How the cluster of this code is doing."""

    code: str


@dataclass(frozen=True)
class ReviewReport:
    """Show a report to review: its answers, accept or needs changes."""

    report: int


@dataclass(frozen=True)
class ReviewDecision:
    """A reviewer's decision on a report: accepted, or it needs changes (then the answers
    concerned and a comment are asked)."""

    report: int
    accepted: bool


@dataclass(frozen=True)
class FixReport:
    """The sender opens their report sent back for changes, at the answers concerned."""

    report: int


Payload = (
    PickSubject
    | OpenReport
    | YesNo
    | Choose
    | Keep
    | Skip
    | Done
    | Back
    | Edit
    | Submit
    | Language
    | PaperClaim
    | PaperDecision
    | Missing
    | ClusterCard
    | ReviewReport
    | ReviewDecision
    | FixReport
)


@dataclass(frozen=True)
class Pressed:
    """A payload that came in: its kind (None: no kind this bot writes), its value (None:
    malformed) and the text after the kind's word (to echo a code back, shortened)."""

    kind: Kind | None
    value: Payload | None
    rest: str = ""


class PayloadTooLong(ValueError):
    """A payload longer than a messenger carries: a button that must not be built."""


@dataclass(frozen=True)
class _Field:
    """How one field of a payload is written and read (`read`: None for malformed text); `width`
    is how many `:`-separated parts it takes (a subject is `cluster:<code>`)."""

    read: Callable[[str], object | None]
    write: Callable[[object], str] = str
    width: int = 1


def _if(pattern: str, then: Callable[[str], object | None]) -> Callable[[str], object | None]:
    """`then` of the text if the whole text matches `pattern` (ASCII digits: int() also takes
    ' +1' and '٣')."""
    compiled = re.compile(pattern)
    return lambda text: then(text) if compiled.fullmatch(text) else None


def _parsed(parse: Callable[[str], object]) -> Callable[[str], object | None]:
    def read(text: str) -> object | None:
        try:
            return parse(text)
        except ValueError:
            return None

    return read


_INDEX = _Field(_if(r"[0-9]{1,3}", int))  # a button's number
_ROW = _Field(_if(r"[0-9]{1,9}", int))  # a row id that fits the store's integer
_REPORT = _Field(_if(r"[0-9]{1,9}", lambda text: int(text) or None))  # a report's id, from 1
# A question id as the forms make them: `gpmb`, or per item `t14.status`, `s-dai-thang-3.note`.
_QUESTION = _Field(_if(r"[a-z0-9][a-z0-9_.-]{0,95}", str))
# A period as buttons write it (`2021-06`): the syntax only; whether it is open is for the
# handler to say.
_PERIOD = _Field(_if(r"[0-9]{4}-[0-9]{2}", _parsed(Period.parse)))
_SUBJECT = _Field(_parsed(Subject.parse), width=2)
_LOCALE = _Field(lambda text: text if text in i18n.SUPPORTED else None)
_CODE = _Field(lambda text: text if len(text) <= MAX_CODE and SLUG_RE.fullmatch(text) else None)
_YES_NO = _Field({"yes": True, "no": False}.get, lambda yes: "yes" if yes else "no")


@dataclass(frozen=True)
class _Codec:
    """A kind's text: its word, then its fields' parts. `flag`: the value's last field (a bool)
    that the word says (`paperok`, `paperno`) rather than a part."""

    kind: Kind
    type: Callable[..., Payload]
    fields: tuple[_Field, ...] = ()
    flag: bool | None = None

    def read(self, parts: list[str]) -> Payload | None:
        if sum(field.width for field in self.fields) != len(parts):
            return None
        values: list[object] = []
        for field in self.fields:
            value = field.read(":".join(parts[: field.width]))
            if value is None:
                return None
            values.append(value)
            parts = parts[field.width :]
        return self.type(*values, *(() if self.flag is None else (self.flag,)))


# Every payload's codec; where a kind has two (`a:`), text reads as the first that reads it.
_CODECS = (
    _Codec(Kind.SUBJECT, PickSubject, (_INDEX,)),
    _Codec(Kind.REPORT, OpenReport, (_SUBJECT, _PERIOD)),
    _Codec(Kind.ANSWER, YesNo, (_QUESTION, _YES_NO)),
    _Codec(Kind.ANSWER, Choose, (_QUESTION, _INDEX)),
    _Codec(Kind.KEEP, Keep, (_QUESTION,)),
    _Codec(Kind.SKIP, Skip, (_QUESTION,)),
    _Codec(Kind.DONE, Done, (_QUESTION,)),
    _Codec(Kind.BACK, Back, (_QUESTION, _YES_NO)),
    _Codec(Kind.EDIT, Edit, (_INDEX,)),
    _Codec(Kind.SUBMIT, Submit),
    _Codec(Kind.LANGUAGE, Language, (_LOCALE,)),
    _Codec(Kind.PAPER, PaperClaim, (_PERIOD,)),
    _Codec(Kind.PAPER_OK, PaperDecision, (_ROW,), flag=True),
    _Codec(Kind.PAPER_NO, PaperDecision, (_ROW,), flag=False),
    _Codec(Kind.MISSING, Missing, (_PERIOD,)),
    _Codec(Kind.CLUSTER, ClusterCard, (_CODE,)),
    _Codec(Kind.REVIEW, ReviewReport, (_REPORT,)),
    _Codec(Kind.ACCEPT, ReviewDecision, (_REPORT,), flag=True),
    _Codec(Kind.CHANGES, ReviewDecision, (_REPORT,), flag=False),
    _Codec(Kind.FIX, FixReport, (_REPORT,)),
)


def encode(value: Payload) -> str:
    """The payload's text. Raises PayloadTooLong past Telegram's 64 bytes, and ValueError for
    a value that would not read back as itself (a question id with a colon, an index < 0)."""
    values = [getattr(value, field.name) for field in dataclasses.fields(value)]
    codec = next(c for c in _CODECS if type(value) is c.type and c.flag in (None, *values[-1:]))
    # A flag, the last value, is in the kind's word: zip leaves it out.
    parts = (field.write(part) for field, part in zip(codec.fields, values, strict=False))
    text = ":".join((codec.kind, *parts))
    if len(text.encode()) > LIMIT:
        raise PayloadTooLong(f"{len(text.encode())} bytes > {LIMIT}: {text[:80]!r}")
    if decode(text) != value:
        raise ValueError(f"not a payload that reads back: {value!r}")
    return text


def kind_of(text: str) -> Kind | None:
    """The kind a payload's first word names, well-formed or not."""
    if text == Kind.SUBMIT:
        return Kind.SUBMIT
    head, sep, _rest = text.partition(":")
    if not sep:
        return None
    try:
        return Kind(head)
    except ValueError:
        return None


def read(text: str | None) -> Pressed | None:
    """What a tapped button (or a typed key standing for one) says; None when no payload came
    (an empty callback data is none either)."""
    if not text:
        return None
    return Pressed(kind_of(text), decode(text), text.partition(":")[2])


def decode(text: str) -> Payload | None:
    """The value a payload's text holds, or None if it is not exactly one this module writes."""
    kind, parts = kind_of(text), text.split(":")[1:]
    readings = (codec.read(parts) for codec in _CODECS if codec.kind is kind)
    return next((value for value in readings if value is not None), None)
