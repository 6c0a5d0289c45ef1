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

import enum
import re
from dataclasses import dataclass

from domain import i18n
from domain.calendar import Period
from domain.subjects import Subject
from domain.text import SLUG_RE

LIMIT = 64  # bytes of Telegram's callback_data
MAX_CODE = 64  # characters of a cluster's code (clusters.code)
_INDEX = re.compile(r"[0-9]{1,3}")  # a button's number in ASCII (int() also takes ' +1', '٣')
_ID = re.compile(r"[0-9]{1,9}")  # a row id that fits the store's integer
_PERIOD = re.compile(r"[0-9]{4}-[0-9]{2}")
# A question id as the forms make them: `gpmb`, or per item `t14.status`, `s-dai-thang-3.note`.
_QUESTION = re.compile(r"[a-z0-9][a-z0-9_.-]{0,95}")


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


def encode(value: Payload) -> str:
    """The payload's text. Raises PayloadTooLong past Telegram's 64 bytes, and ValueError for
    a value that would not read back as itself (a question id with a colon, an index < 0)."""
    text = _text(value)
    if len(text.encode()) > LIMIT:
        raise PayloadTooLong(f"{len(text.encode())} bytes > {LIMIT}: {text[:80]!r}")
    if decode(text) != value:
        raise ValueError(f"not a payload that reads back: {value!r}")
    return text


def _text(value: Payload) -> str:
    match value:
        case PickSubject(index):
            return f"subject:{index}"
        case OpenReport(subject, period):
            return f"report:{subject}:{period}"
        case YesNo(question, yes):
            return f"a:{question}:{'yes' if yes else 'no'}"
        case Choose(question, index):
            return f"a:{question}:{index}"
        case Keep(question):
            return f"keep:{question}"
        case Skip(question):
            return f"skip:{question}"
        case Done(question):
            return f"done:{question}"
        case Back(question, confirmed):
            return f"back:{question}:{'yes' if confirmed else 'no'}"
        case Edit(number):
            return f"edit:{number}"
        case Submit():
            return "submit"
        case Language(locale):
            return f"lang:{locale}"
        case PaperClaim(period):
            return f"paper:{period}"
        case PaperDecision(receipt, received):
            return f"{'paperok' if received else 'paperno'}:{receipt}"
        case Missing(period):
            return f"missing:{period}"
        case ClusterCard(code):
            return f"{Subject.CLUSTER}{code}"
        case ReviewReport(report):
            return f"review:{report}"
        case ReviewDecision(report, accepted):
            return f"{'accept' if accepted else 'changes'}:{report}"
        case FixReport(report):
            return f"fix:{report}"


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
    kind = kind_of(text)
    rest = text.partition(":")[2]
    if kind is None:
        return None
    if kind is Kind.SUBMIT:
        return Submit() if text == Kind.SUBMIT else None
    if kind is Kind.REPORT:
        subject_text, _sep, period_text = rest.rpartition(":")
        subject, period = _subject(subject_text), _period(period_text)
        return None if subject is None or period is None else OpenReport(subject, period)
    if kind in (Kind.ANSWER, Kind.BACK):
        question, sep, word = rest.partition(":")
        if not sep or not _QUESTION.fullmatch(question):
            return None
        if kind is Kind.BACK:
            return Back(question, word == "yes") if word in ("yes", "no") else None
        if word in ("yes", "no"):
            return YesNo(question, word == "yes")
        return Choose(question, int(word)) if _INDEX.fullmatch(word) else None
    if kind in (Kind.KEEP, Kind.SKIP, Kind.DONE):
        if not _QUESTION.fullmatch(rest):
            return None
        if kind is Kind.KEEP:
            return Keep(rest)
        return Skip(rest) if kind is Kind.SKIP else Done(rest)
    if kind in (Kind.SUBJECT, Kind.EDIT):
        if not _INDEX.fullmatch(rest):
            return None
        return PickSubject(int(rest)) if kind is Kind.SUBJECT else Edit(int(rest))
    if kind is Kind.LANGUAGE:
        return Language(rest) if rest in i18n.SUPPORTED else None
    if kind in (Kind.PAPER, Kind.MISSING):
        period = _period(rest)
        if period is None:
            return None
        return PaperClaim(period) if kind is Kind.PAPER else Missing(period)
    if kind in (Kind.PAPER_OK, Kind.PAPER_NO):
        return PaperDecision(int(rest), kind is Kind.PAPER_OK) if _ID.fullmatch(rest) else None
    if kind in (Kind.REVIEW, Kind.ACCEPT, Kind.CHANGES, Kind.FIX):
        if not _ID.fullmatch(rest) or int(rest) == 0:
            return None
        if kind is Kind.REVIEW:
            return ReviewReport(int(rest))
        if kind is Kind.FIX:
            return FixReport(int(rest))
        return ReviewDecision(int(rest), kind is Kind.ACCEPT)
    # Kind.CLUSTER
    if len(rest) > MAX_CODE or not SLUG_RE.fullmatch(rest):
        return None
    return ClusterCard(rest)


def _period(text: str) -> Period | None:
    """A period as buttons write it (`2021-06`): the syntax only; whether it is open is for the
    handler to say."""
    if not _PERIOD.fullmatch(text):
        return None
    try:
        return Period.parse(text)
    except ValueError:
        return None


def _subject(text: str) -> Subject | None:
    try:
        return Subject.parse(text)
    except ValueError:
        return None
