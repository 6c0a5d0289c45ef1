"""A report form: its questions, when each applies, what each answer means for the plan (the
step of a cluster's chain it completes, the target it counts toward, the workbook column that
shows it, what the month's report upward does with it), and what a district or department
reports on. The forms themselves are data (store/forms/*.yaml, loaded by store.forms; the
schema is in the header of founded.yaml)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal, get_args

from domain.roles import ClusterKind

QuestionType = Literal[
    "percent", "number", "date", "month", "yesno", "choice", "text", "photos", "location"
]
_ID = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # a step kind or a target code
# The cluster's planned dates a step of its chain can be due by (Phụ lục 3's columns).
PlanDate = Literal["planned_groundbreaking", "planned_completion"]
MEANINGFUL: tuple[QuestionType, ...] = ("percent", "number", "yesno", "choice")
# a figure that may not go down; a choice of stages that may not go back (its choices' order)
MONOTONIC: tuple[QuestionType, ...] = ("percent", "number", "choice")
# `means:` of a per-item question (reports/tasks.py): `progress` the choice saying how far the
# item is, `share_done` the percentage done of an item under way; and of each choice of the
# progress question: what it is counted as.
ItemMeaning = Literal["progress", "share_done"]
Stage = Literal["done", "under_way", "not_started"]
# `upward:` what the month's report upward (reports/document.py) does with the answer: a
# `difficulty` or a `proposal` is a free text it quotes under "Khó khăn, vướng mắc" or "Kiến
# nghị, đề xuất"; `occupancy` is a cluster's occupancy rate, whose changes (a first one from the
# registry's planned rate) and mean it tells per group of clusters. Each at most once a form.
RemarkKind = Literal["difficulty", "proposal"]
Upward = Literal[RemarkKind, "occupancy"]
REMARKS: tuple[RemarkKind, ...] = get_args(RemarkKind)
UPWARD_TYPES: dict[str, QuestionType] = {
    "difficulty": "text",
    "proposal": "text",
    "occupancy": "percent",
}


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
    means: Stage | None = None  # on the choices of a `means: progress` question

    def __post_init__(self) -> None:
        if self.means is not None and self.means not in get_args(Stage):
            raise ValueError(
                f"choice {self.value}: means {self.means!r} is not one of {_list(Stage)}"
            )

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
class Completes:
    """`completes:` the step of the cluster's plan (a ClusterStep kind, e.g. gpmb) that this
    answer shows done when it is one of `when`; `due`: the cluster's planned date after which
    the step, still open, is late."""

    step: str
    when: tuple[Any, ...]
    due: PlanDate | None = None

    def __post_init__(self) -> None:
        if not _KEY.match(self.step):
            raise ValueError(f"bad step kind {self.step!r}")
        if not self.when:
            raise ValueError(f"step {self.step}: `when` names no answer")
        if self.due is not None and self.due not in get_args(PlanDate):
            raise ValueError(f"step {self.step}: due {self.due!r} is not one of {_list(PlanDate)}")

    def done(self, value: Any) -> bool:
        return value is not None and any(_same(value, v) for v in self.when)


@dataclass(frozen=True)
class Counts:
    """`counts_toward:` the target of the plan (a code of targets.csv) a cluster counts toward
    when its answer is one of `when`; the target's quarterly parts (`<code>_q1` … `_q4`) too,
    each counting the clusters whose `dated_by` answer falls in its quarter. `among`: the kinds
    of cluster counted (and, for a percentage, the whole it is a percentage of); by default
    every kind that answers the form."""

    target: str
    when: tuple[Any, ...]
    among: tuple[str, ...] = ()
    dated_by: str | None = None

    def __post_init__(self) -> None:
        if not _KEY.match(self.target):
            raise ValueError(f"bad target code {self.target!r}")
        if not self.when:
            raise ValueError(f"target {self.target}: `when` names no answer")
        for kind in self.among:
            if kind not in set(ClusterKind):
                raise ValueError(
                    f"target {self.target}: {kind!r} is not a kind of cluster "
                    f"({', '.join(ClusterKind)})"
                )

    def counted(self, value: Any) -> bool:
        return value is not None and any(_same(value, v) for v in self.when)


@dataclass(frozen=True)
class Column:
    """`column:` the header of the workbook column that shows the answer, and its width."""

    vi: str
    en: str
    width: int = 12

    def __post_init__(self) -> None:
        if not self.vi.strip() or not self.en.strip():
            raise ValueError("a column needs a header in vi and en")
        if not 4 <= self.width <= 100:
            raise ValueError(f"column {self.vi!r}: width {self.width} is not 4–100")

    def get(self, locale: str) -> str:
        return self.en if locale == "en" else self.vi


def _list(kind: Any) -> str:
    return ", ".join(get_args(kind))


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
    # a choice question's earlier answers (e.g. the yes/no it was before it became stages):
    # shown in their words where a stored report has one, never offered or accepted
    formerly: tuple[Choice, ...] = ()
    ask_if: Condition | None = None
    completes: tuple[Completes, ...] = ()  # the plan's steps this answer completes
    counts_toward: Counts | None = None  # the plan's target this answer counts toward
    column: Column | None = None  # the workbook column that shows this answer
    # plausibility: asked back once, then flagged for the reviewer (domain.draft.doubt)
    max_jump: Decimal | None = None  # a figure moving more than this since the last report
    not_future: bool = False  # a date that has happened: not after the period's end and today
    not_before: date | None = None  # a date not before this one (e.g. the cluster's founding)
    means: ItemMeaning | None = None  # what a per-item answer says of its item's progress
    upward: Upward | None = None  # what the month's report upward does with the answer

    def __post_init__(self) -> None:
        if self.type == "choice" and len(self.choices) < 2:
            raise ValueError(f"{self.id}: a choice needs at least two options")
        self._check_choices()
        self._check_means()
        self._check_upward()
        self._check_plausibility()
        steps = [c.step for c in self.completes]
        if len(set(steps)) < len(steps):
            raise ValueError(f"{self.id}: completes a step twice")
        for c in self.completes:
            self._answers(c.when, f"completes {c.step} when")
        if self.counts_toward is not None:
            target = self.counts_toward.target
            self._answers(self.counts_toward.when, f"counts toward {target} when")

    def _check_choices(self) -> None:
        """`monotonic` belongs to a figure or to a choice of stages (in the order of its
        choices); `formerly` to a choice, with values none of its choices has."""
        if self.monotonic and self.type not in MONOTONIC:
            raise ValueError(
                f"{self.id}: monotonic is for percent, number and choice questions, not {self.type}"
            )
        if self.formerly and self.type != "choice":
            raise ValueError(f"{self.id}: formerly is for choice questions, not {self.type}")
        values = [c.value for c in (*self.choices, *self.formerly)]
        if len(set(values)) < len(values):
            raise ValueError(f"{self.id}: a choice value is given twice ({', '.join(values)})")

    def _check_means(self) -> None:
        """`means: progress` is a choice each of whose choices says what it counts as, one at
        least as done; `means: share_done` a percent; a choice's `means` belongs to the first."""
        if self.means is not None and self.means not in get_args(ItemMeaning):
            raise ValueError(f"{self.id}: means {self.means!r} is not one of {_list(ItemMeaning)}")
        if self.means == "share_done" and self.type != "percent":
            raise ValueError(f"{self.id}: means share_done is for a percent, not a {self.type}")
        if self.means != "progress":
            if any(c.means for c in self.choices):
                raise ValueError(
                    f"{self.id}: its choices say what they mean, but it is not `means: progress`"
                )
            return
        if self.type != "choice":
            raise ValueError(f"{self.id}: means progress is for a choice, not a {self.type}")
        unsaid = [c.value for c in self.choices if c.means is None]
        if unsaid:
            raise ValueError(
                f"{self.id}: choice {', '.join(unsaid)} does not say what it means ({_list(Stage)})"
            )
        if not any(c.means == "done" for c in self.choices):
            raise ValueError(f"{self.id}: no choice means done")

    def _check_upward(self) -> None:
        """A difficulty or a proposal is a text, an occupancy a percent."""
        if self.upward is None:
            return
        if self.upward not in UPWARD_TYPES:
            raise ValueError(f"{self.id}: upward {self.upward!r} is not one of {_list(Upward)}")
        wanted = UPWARD_TYPES[self.upward]
        if self.type != wanted:
            raise ValueError(
                f"{self.id}: upward {self.upward} is for a {wanted} question, not a {self.type}"
            )

    def stage(self, value: str | None) -> Stage | None:
        """What an answer to the progress question counts as (None: no answer, or one it no
        longer offers)."""
        return next((c.means for c in self.choices if c.value == value), None)

    def _check_plausibility(self) -> None:
        """`max_jump` belongs to a figure, `not_future` and `not_before` to a date."""
        if self.max_jump is not None:
            if self.type not in ("percent", "number"):
                raise ValueError(
                    f"{self.id}: max_jump is for percent and number questions, not {self.type}"
                )
            if not self.max_jump.is_finite() or self.max_jump <= 0:
                raise ValueError(f"{self.id}: max_jump {self.max_jump} is not a positive number")
            if self.type == "percent" and self.max_jump >= 100:
                raise ValueError(
                    f"{self.id}: max_jump {self.max_jump} is 100 points or more: a percent "
                    "never moves that much, so it would never be asked"
                )
        if (self.not_future or self.not_before is not None) and self.type != "date":
            raise ValueError(
                f"{self.id}: not_future and not_before are for date questions, not {self.type}"
            )

    def _answers(self, values: tuple[Any, ...], what: str) -> None:
        """Each value of a `when` is an answer this question can take."""
        if self.type not in MEANINGFUL:
            raise ValueError(
                f"{self.id}: a {self.type} question cannot complete a step or count toward a "
                f"target, only {', '.join(MEANINGFUL)} questions"
            )
        for value in values:
            if self.type in ("yesno", "choice"):
                allowed = ["yes", "no"] if self.type == "yesno" else [c.value for c in self.choices]
                if not isinstance(value, str) or value not in allowed:
                    quote = " (quote it: YAML reads a bare yes or no as true or false)"
                    raise ValueError(
                        f"{self.id}: {what} {value!r}, which is not one of its answers "
                        f"({', '.join(allowed)})" + (quote if isinstance(value, bool) else "")
                    )
            elif not self._takes(value):
                raise ValueError(
                    f"{self.id}: {what} {value!r}, which is not a {self.type} it takes"
                )

    def _takes(self, value: Any) -> bool:
        """A number this percent or number question accepts (0–100 for a percent)."""
        if isinstance(value, bool):
            return False
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            return False
        low, high = self.min, self.max
        if self.type == "percent":
            low = Decimal(0) if low is None else low
            high = Decimal(100) if high is None else high
        return (
            number.is_finite()
            and (low is None or number >= low)
            and (high is None or number <= high)
        )


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
        self._check_meaning()

    def _check_meaning(self) -> None:
        """Steps, targets and columns belong to a cluster's own answers: a form some kind of
        cluster answers, not its `each_item` questions; a step is completed by one question. A
        form asked per item says which of its per-item questions is the progress (once), and
        may say which is the share done (once); its other questions have no `means`. What the
        report upward does with an answer (`upward:`) is said of the form's own questions, each
        meaning once; an occupancy only where a kind of cluster answers the form."""
        for q in self.questions:
            if q.means is not None:
                raise ValueError(
                    f"{self.form}: {q.id} is not asked per item: it cannot mean {q.means}"
                )
        for meaning in get_args(ItemMeaning):
            which = [q.id for q in self.each_item if q.means == meaning]
            if len(which) > 1:
                raise ValueError(f"{self.form}: {' and '.join(which)} both mean {meaning}")
        if self.each_item and self.progress is None:
            raise ValueError(
                f"{self.form}: no question asked per item says `means: progress` (the choice "
                "of how far the item is)"
            )
        for q in self.each_item:
            if q.completes or q.counts_toward or q.column or q.upward:
                raise ValueError(
                    f"{self.form}: {q.id} is asked per item: it cannot complete a step, count "
                    "toward a target, have a workbook column or say `upward:`"
                )
        for told in get_args(Upward):
            which = [q.id for q in self.questions if q.upward == told]
            if len(which) > 1:
                raise ValueError(f"{self.form}: {' and '.join(which)} are both upward {told}")
        kinds = [k for k in ClusterKind if k.form == self.form]
        by_id = {q.id: q for q in self.questions}
        completed: dict[str, str] = {}
        for q in self.questions:
            if not kinds and (q.completes or q.counts_toward or q.column):
                raise ValueError(
                    f"{self.form}: {q.id} has a step, target or column, but no kind of cluster "
                    "answers this form (only cluster forms have them)"
                )
            if not kinds and q.upward == "occupancy":
                raise ValueError(
                    f"{self.form}: {q.id} is upward occupancy, but no kind of cluster answers "
                    "this form (only a cluster has an occupancy rate)"
                )
            for c in q.completes:
                if c.step in completed:
                    raise ValueError(
                        f"{self.form}: step {c.step} is completed by both {completed[c.step]} "
                        f"and {q.id}"
                    )
                completed[c.step] = q.id
            counts = q.counts_toward
            if counts is None:
                continue
            for kind in counts.among:
                if kind not in kinds:
                    raise ValueError(
                        f"{self.form}: {q.id} counts {kind} clusters toward {counts.target}, "
                        f"but they answer the {ClusterKind(kind).form} form"
                    )
            if counts.dated_by is not None:
                dated = by_id.get(counts.dated_by)
                if dated is None or dated.type != "date":
                    raise ValueError(
                        f"{self.form}: {q.id} is dated by {counts.dated_by!r}, which is not a "
                        "date question of this form"
                    )

    @property
    def chain(self) -> tuple[tuple[str, Completes], ...]:
        """The steps the answers complete, in the order of the questions: (question id, step)."""
        return tuple((q.id, c) for q in self.questions for c in q.completes)

    @property
    def columns(self) -> tuple[Question, ...]:
        """The questions the workbook shows, in the form's order."""
        return tuple(q for q in self.questions if q.column is not None)

    @property
    def counters(self) -> tuple[Question, ...]:
        """The questions that count toward a target of the plan."""
        return tuple(q for q in self.questions if q.counts_toward is not None)

    @property
    def progress(self) -> Question | None:
        """The per-item question saying how far an item is (`means: progress`)."""
        return next((q for q in self.each_item if q.means == "progress"), None)

    def upward(self, told: Upward) -> Question | None:
        """The question the month's report upward tells as `told` (`upward:`), if any."""
        return next((q for q in self.questions if q.upward == told), None)

    @property
    def share_done(self) -> Question | None:
        """The per-item percentage done of an item under way (`means: share_done`)."""
        return next((q for q in self.each_item if q.means == "share_done"), None)


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
