"""The rules of a report being filled in, with no I/O: which questions apply given the answers
so far (`ask_if`, `or_step`), the next one to ask, recording and forgetting an answer, which
answer needs confirming (a figure that went down or jumped, an unlikely date: `doubt`), which
stored answers no longer hold, and the answers a submitted report keeps. The report
conversation (handlers/reporting.py) reads and writes the draft's row and talks to the person;
this module decides.

The answers are kept as the store holds them: `{question id: {"v": value, "reason": why a
figure went down (or why a doubtful one is right), "flag": the doubt it was confirmed with}}`,
and under keys of their own the items a district or department reports on (`_items`: [[key,
title], …]), the kinds of step the cluster's plan has (`_steps`) and a location shared at any
point of the report (`_location`: {"v": "lat,lon"})."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from domain import answers
from domain.forms import Form, Item, Question, expand

ITEMS_KEY = "_items"
STEPS_KEY = "_steps"  # the kinds of step the cluster's plan has (conditions may depend on them)
LOCATION_KEY = "_location"  # a location shared at any point of the report
REASON_LIMIT = 500  # characters of the reason a figure went down
FLAG = "flag"  # under an answer: the doubt it was confirmed with (Doubt)
NUMERIC = ("percent", "number")
_COUNT = re.compile(r"[0-9]{1,3}")  # a photo count as stored, in ASCII
_WHERE = re.compile(r"(-?[0-9]{1,3}\.[0-9]{6}),(-?[0-9]{1,3}\.[0-9]{6})")


def where(location: tuple[float, float]) -> str:
    """A shared location as stored: `lat,lon` with six decimals."""
    return f"{location[0]:.6f},{location[1]:.6f}"


def valid_where(value: object) -> bool:
    """A location as `where` writes it, on the globe."""
    m = _WHERE.fullmatch(value) if isinstance(value, str) else None
    return m is not None and abs(float(m[1])) <= 90 and abs(float(m[2])) <= 180


def valid_answer(question: Question, value: object, today: date) -> bool:
    """Whether `value` is an answer `question` takes, in its stored form: what parsing the same
    text would store (yes/no only `yes`|`no`, a choice's value, a plain number in range …)."""
    if value is None:
        return not question.required
    if not isinstance(value, str):
        return False
    if question.type == "photos":
        return _COUNT.fullmatch(value) is not None
    if question.type == "location":
        return valid_where(value)
    try:
        return answers.parse(question, value, today) == value
    except answers.Unreadable:
        return False


def value_of(stored: Mapping[str, Any], qid: str) -> str | None:
    """The value of one stored answer (of a draft or a report), None if there is none."""
    entry = stored.get(qid)
    value = entry.get("v") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def carried(question: Question, last: Mapping[str, Any] | None, today: date) -> str | None:
    """The last report's answer to `question`, offered as "Unchanged", if the question still
    takes it (photos are never carried over)."""
    if last is None or question.type == "photos":
        return None
    previous = value_of(last, question.id)
    if previous is None or not valid_answer(question, previous, today):
        return None
    return previous


def goes_down(question: Question, previous: str | None, value: str) -> bool:
    """A figure the plan only sees grow (`monotonic`) that is lower than last time, or a stage
    before last time's (a choice, in its choices' order): it needs confirming, and a reason."""
    if not question.monotonic or previous is None:
        return False
    if question.type == "choice":
        order = [c.value for c in question.choices]
        return previous in order and value in order and order.index(value) < order.index(previous)
    if question.type not in NUMERIC:
        return False
    return Decimal(value) < Decimal(previous)


class Doubt(enum.StrEnum):
    """Why an answer is asked back once before it is taken (plausibility)."""

    DOWN = "down"  # a figure the plan only sees grow went down: confirmed, with a reason
    JUMP = "jump"  # moved more than the question's `max_jump` since the last report
    FUTURE = "future"  # a date that has happened (`not_future`) after the period's end and today
    EARLY = "early"  # a date before the question's `not_before` (the clusters' founding)

    @property
    def flagged(self) -> bool:
        """Kept with the answer as its `flag`, for the reviewer (a figure that went down shows
        its reason, as it always did)."""
        return self is not Doubt.DOWN

    @property
    def needs_reason(self) -> bool:
        """The reason is required (else it may be skipped)."""
        return self is Doubt.DOWN


def doubt(question: Question, previous: str | None, value: str, latest: date) -> Doubt | None:
    """What makes `value`, an answer `question` takes, doubtful: a figure gone down or jumped
    since the last report's `previous`, a date after `latest` (the later of the period's last
    day and today) or before the question's `not_before`. None: nothing to ask."""
    if goes_down(question, previous, value):
        return Doubt.DOWN
    if question.type in NUMERIC:
        jump = question.max_jump
        if (
            jump is not None
            and previous is not None
            and abs(Decimal(value) - Decimal(previous)) > jump
        ):
            return Doubt.JUMP
    elif question.type == "date" and value:
        day = date.fromisoformat(value)
        if question.not_future and day > latest:
            return Doubt.FUTURE
        if question.not_before is not None and day < question.not_before:
            return Doubt.EARLY
    return None


def flag_of(stored: Mapping[str, Any], qid: str) -> Doubt | None:
    """The doubt a stored answer was confirmed with (None if none, or not one we write)."""
    entry = stored.get(qid)
    flag = entry.get(FLAG) if isinstance(entry, dict) else None
    try:
        return Doubt(flag) if isinstance(flag, str) else None
    except ValueError:
        return None


def initial_answers(
    items: Sequence[Item] | None = None, steps: Sequence[str] | None = None
) -> dict[str, Any]:
    """What a new draft starts with: the items it asks about (a task report), the kinds of
    step the cluster's plan has (a cluster's report)."""
    initial: dict[str, Any] = {}
    if items is not None:
        initial[ITEMS_KEY] = [[i.key, i.title] for i in items]
    if steps is not None:
        initial[STEPS_KEY] = list(steps)
    return initial


@dataclass(frozen=True)
class Draft:
    """A draft's form and its answers as stored; changes return a new Draft."""

    form: Form
    answers: Mapping[str, Any]

    @property
    def items(self) -> list[Item]:
        return [Item(k, t) for k, t in self.answers.get(ITEMS_KEY, [])]

    @property
    def steps(self) -> frozenset[str]:
        return frozenset(self.answers.get(STEPS_KEY) or [])

    @property
    def location(self) -> str | None:
        return value_of(self.answers, LOCATION_KEY) if LOCATION_KEY in self.answers else None

    def questions(self) -> list[Question]:
        """Every question of the form, each item's questions repeated."""
        return expand(self.form, self.items)

    def value(self, qid: str) -> str | None:
        return value_of(self.answers, qid)

    def _raw(self, qid: str) -> Any:
        """The stored value as it is, for the checks that must see a wrong one."""
        entry = self.answers.get(qid)
        return entry.get("v") if isinstance(entry, dict) else None

    def reason(self, qid: str) -> str | None:
        entry = self.answers.get(qid)
        reason = entry.get("reason") if isinstance(entry, dict) else None
        return reason if isinstance(reason, str) and reason else None

    def applicable(self) -> list[Question]:
        """The questions that apply given the answers so far (`ask_if`, `or_step`)."""
        steps = self.steps
        return [
            q
            for q in self.questions()
            if q.ask_if is None or q.ask_if.holds(self._raw(q.ask_if.question), steps)
        ]

    def question(self, qid: str | None) -> Question | None:
        """The applicable question of that id."""
        return next((q for q in self.applicable() if q.id == qid), None)

    def next_question(self) -> Question | None:
        """The first applicable question not answered yet (a skipped one is answered)."""
        return next((q for q in self.applicable() if q.id not in self.answers), None)

    def position(self, question: Question) -> tuple[int, int]:
        """(its number, how many apply), for "(3/10)"."""
        ids = [q.id for q in self.applicable()]
        return ids.index(question.id) + 1, len(ids)

    def record(
        self,
        qid: str,
        value: str | None,
        reason: str | None = None,
        flag: Doubt | None = None,
    ) -> Draft:
        entry: dict[str, Any] = {"v": value}
        if reason:
            entry["reason"] = reason
        if flag is not None and flag.flagged:
            entry[FLAG] = flag.value
        return Draft(self.form, {**self.answers, qid: entry})

    def located(self, where_text: str) -> Draft:
        return self.record(LOCATION_KEY, where_text)

    def forget(self, qid: str) -> Draft:
        return Draft(self.form, {k: v for k, v in self.answers.items() if k != qid})

    def spoiled(self, today: date) -> list[Question]:
        """Answers stored earlier that their question does not take (a forged button before
        this was checked, a form changed since): they are asked again before submitting. A
        photo count is taken at submission, so it is never spoiled."""
        return [
            q
            for q in self.applicable()
            if q.id in self.answers
            and q.type != "photos"
            and (
                not isinstance(self.answers[q.id], dict)
                or not valid_answer(q, self._raw(q.id), today)
            )
        ]

    def submitted(self, photo_count: int) -> dict[str, Any]:
        """The answers the report keeps: the applicable questions' (the photos' as the count
        linked), the location, the items asked about. Only when every one is answered."""
        if self.next_question() is not None:
            raise ValueError("the draft still has questions to answer")
        kept: dict[str, Any] = {}
        for q in self.applicable():
            kept[q.id] = {"v": str(photo_count)} if q.type == "photos" else self.answers[q.id]
        if LOCATION_KEY in self.answers:
            kept[LOCATION_KEY] = self.answers[LOCATION_KEY]
        if ITEMS_KEY in self.answers:
            kept[ITEMS_KEY] = self.answers[ITEMS_KEY]
        return kept
