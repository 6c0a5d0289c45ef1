"""A report form: its questions, when each applies, and what a district or department reports
on. The forms themselves are data (store/forms/*.yaml, loaded by store.forms)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

QuestionType = Literal[
    "percent", "number", "date", "month", "yesno", "choice", "text", "photos", "location"
]
_ID = re.compile(r"^[a-z][a-z0-9_]{0,19}$")


@dataclass(frozen=True)
class Text:
    vi: str
    en: str

    def get(self, locale: str) -> str:
        return self.en if locale == "en" else self.vi


@dataclass(frozen=True)
class Choice:
    value: str
    vi: str
    en: str

    def label(self, locale: str) -> str:
        return self.en if locale == "en" else self.vi


@dataclass(frozen=True)
class Condition:
    """`ask_if`: compare an earlier answer."""

    question: str
    equals: Any = None
    not_equals: Any = None
    at_least: Decimal | None = None
    at_most: Decimal | None = None
    in_: tuple[Any, ...] | None = None  # `in:` in the form's file
    # or: the cluster's plan has a step of this kind (e.g. land handed over before clearance ends)
    or_step: str | None = None

    def holds(self, value: Any, steps: frozenset[str] = frozenset()) -> bool:
        if self.or_step is not None and self.or_step in steps:
            return True
        if value is None:
            return False
        if self.equals is not None and not _same(value, self.equals):
            return False
        if self.not_equals is not None and _same(value, self.not_equals):
            return False
        if self.at_least is not None and Decimal(str(value)) < self.at_least:
            return False
        if self.at_most is not None and Decimal(str(value)) > self.at_most:
            return False
        return self.in_ is None or any(_same(value, v) for v in self.in_)


def _same(a: Any, b: Any) -> bool:
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except ArithmeticError:
        return str(a) == str(b)


@dataclass(frozen=True)
class Question:
    id: str
    type: QuestionType
    label: Text
    hint: Text | None = None
    required: bool = True
    choices: tuple[Choice, ...] = ()
    min: Decimal | None = None
    max: Decimal | None = None
    unit: Text | None = None
    monotonic: bool = False
    max_length: int = 1000
    max_photos: int = 10
    ask_if: Condition | None = None

    def __post_init__(self) -> None:
        if self.type == "choice" and len(self.choices) < 2:
            raise ValueError(f"{self.id}: a choice needs at least two options")


@dataclass(frozen=True)
class Form:
    form: str
    version: int
    title: Text
    questions: tuple[Question, ...] = ()
    each_item: tuple[Question, ...] = ()

    def __post_init__(self) -> None:
        for group in (self.each_item, self.questions):
            seen: set[str] = set()
            for q in group:
                if not _ID.match(q.id):
                    raise ValueError(f"{self.form}: bad question id {q.id!r}")
                if q.id in seen:
                    raise ValueError(f"{self.form}: question id {q.id!r} twice")
                if q.ask_if and q.ask_if.question not in seen:
                    raise ValueError(f"{self.form}: {q.id} depends on a later or unknown question")
                seen.add(q.id)


@dataclass(frozen=True)
class Item:
    """Something a district or department reports on: a city task or a cluster step."""

    key: str
    title: str


def expand(form: Form, items: Sequence[Item] = ()) -> list[Question]:
    """The form's questions in order, with `each_item` repeated per item (ids `<item>.<id>`)."""
    out: list[Question] = []
    for item in items:
        for q in form.each_item:
            condition = q.ask_if
            if condition is not None:
                condition = dataclasses.replace(
                    condition, question=f"{item.key}.{condition.question}"
                )
            out.append(
                dataclasses.replace(
                    q,
                    id=f"{item.key}.{q.id}",
                    label=Text(
                        vi=q.label.vi.replace("{item}", item.title),
                        en=q.label.en.replace("{item}", item.title),
                    ),
                    ask_if=condition,
                )
            )
    out.extend(form.questions)
    return out
