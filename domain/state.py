"""Where a chat is in its conversation: a typed value, stored by the store as JSON in the
conversation's row (`to_json`/`from_json`), so a restart, a week of silence or a second worker
continues where the person left off.

The JSON keeps the shape the untyped dict always had (`mode`, `q`, `pending`, `editing`,
`draft`, `period`, `offer`, `pending_photos`, `pending_location`, `locale`, `phone`): a chat in
the middle of a report when this type came in resumes as it was, and the reminders, which add
the choices they offer under `offer`, write the same key. `albums`, and a review's `review` and
`concerned`, came later and are written only when set, so a state without them is read as
before. A stored state is input like anything
else: what cannot be read is dropped, field by field, and a state that is no object at all is a
fresh one. Nothing here raises on what the store holds.

The report conversation (handlers/reporting.py); a reminder's buttons and the commands work at
any step, /huy (cancel) returns to IDLE from every step and keeps the draft:

```mermaid
stateDiagram-v2
    [*] --> IDLE
    IDLE --> PICK_SUBJECT: /baocao, several clusters
    IDLE --> ASK: /baocao, one cluster / a reminder's button
    PICK_SUBJECT --> ASK: a cluster's button (the draft opened or resumed)
    ASK --> ASK: an answer, the next question
    ASK --> CONFIRM_BACK: a doubtful answer (a figure went down or jumped, an unlikely date)
    CONFIRM_BACK --> REASON_BACK: "Yes, it went down" / "Yes, that is right"
    CONFIRM_BACK --> ASK: "Re-enter", or a new figure typed
    REASON_BACK --> ASK: the reason (or Skip, unless it went down), the next question
    ASK --> SUMMARY: no question left
    REASON_BACK --> SUMMARY: the reason, no question left
    SUMMARY --> ASK: ✏️ n (editing), or an answer no longer valid
    SUMMARY --> IDLE: "Submit report" (the receipt)
    ASK --> IDLE: /huy
    SUMMARY --> IDLE: /huy
```

A reviewer's "needs changes" (handlers/review.py): the report's buttons and the commands work
at any step; /huy returns to IDLE from both and changes nothing.

```mermaid
stateDiagram-v2
    [*] --> IDLE
    IDLE --> REVIEW_ANSWERS: "Needs changes" on a report (its answers numbered)
    REVIEW_ANSWERS --> REVIEW_COMMENT: the numbers of the answers concerned
    REVIEW_COMMENT --> IDLE: the comment (the sender is told)
    REVIEW_ANSWERS --> IDLE: /huy
    REVIEW_COMMENT --> IDLE: /huy
```
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass
from typing import Any

from domain import i18n
from domain.calendar import Period
from domain.draft import valid_where

MAX_ID = 2**31 - 1  # a row id the store's integer columns hold
MAX_PHOTOS_KEPT = 1000  # photo ids kept for the next report, at most (a report takes ten)
MAX_ALBUMS = 8  # albums whose latest update is remembered (one is in flight at a time)
_QUESTION_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,95}")  # as the forms make them
_ALBUM_KEY_LIMIT = 64  # a media group id or an update id (Telegram's are some 20 digits)
_PHONE = re.compile(r"\+?\d{6,20}")  # as store.contacts.normalise_phone writes it


class Step(enum.StrEnum):
    """The step of the conversation; stored as `mode` (IDLE as no `mode` at all)."""

    IDLE = "idle"
    PICK_SUBJECT = "pick_subject"  # which cluster to report on (buttons `subject:<i>`)
    ASK = "ask"  # a question of the draft's form is open (`question`)
    CONFIRM_BACK = "confirm_back"  # a doubtful answer (`pending`; domain.draft.doubt): right?
    REASON_BACK = "reason_back"  # it is: why?
    SUMMARY = "summary"  # the answers shown with ✏️ buttons and "Submit report"
    REVIEW_ANSWERS = "review_answers"  # a reviewer types the numbers of the answers concerned
    REVIEW_COMMENT = "review_comment"  # ... then the comment for the sender (free text)

    @property
    def in_report(self) -> bool:
        """A draft is open and what the person sends answers it."""
        return self in _REPORT_STEPS

    @property
    def in_review(self) -> bool:
        """A reviewer is saying why a report needs changes (`review`)."""
        return self in _REVIEW_STEPS


_REPORT_STEPS = frozenset({Step.ASK, Step.CONFIRM_BACK, Step.REASON_BACK, Step.SUMMARY})
_REVIEW_STEPS = frozenset({Step.REVIEW_ANSWERS, Step.REVIEW_COMMENT})
MAX_CONCERNED = 200  # answers a reviewer may point at, at most (a task report has many)


@dataclass(frozen=True)
class Offered:
    """A choice shown on a channel without buttons: the key to type, its words as typed
    (folded), and the button's payload it stands for (handlers.choices)."""

    key: str
    words: str
    payload: str


@dataclass
class ConversationState:
    step: Step = Step.IDLE
    question: str | None = None  # the question asked (ASK, CONFIRM_BACK, REASON_BACK)
    pending: str | None = None  # the doubtful answer (a figure that went down …), until confirmed
    editing: bool = False  # changing one answer from the summary: back to it afterwards
    draft: int | None = None  # the open draft's id
    period: Period | None = None  # the period being reported (kept while picking the subject)
    offer: tuple[Offered, ...] = ()  # choices shown as keys to type (Zalo, terminal)
    pending_photos: tuple[int, ...] = ()  # photos sent with no report open, for the next one
    pending_location: str | None = None  # a location shared with no report open (`lat,lon`)
    locale: str | None = None  # a stranger's messenger language (a person has their own)
    phone: str | None = None  # a phone a stranger shared, kept for when they are invited
    # per album (a messenger's media group id), the update of it handled last, oldest first:
    # an album's photos arrive as separate updates, possibly at different workers, and only the
    # worker that handled the last one answers (bot/channels/telegram.py)
    albums: tuple[tuple[str, str], ...] = ()
    review: int | None = None  # the report a reviewer is sending back for changes
    concerned: tuple[str, ...] = ()  # ... and the question ids of the answers concerned

    def reset(self, *, keep_photos: bool = False) -> None:
        """Back to a fresh state; `keep_photos`: the photos (not the location) kept for the next
        report stay. The albums stay: they are about delivery, not where the chat is."""
        photos = self.pending_photos if keep_photos else ()
        albums = self.albums
        fresh = ConversationState()
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(fresh, f.name))
        self.pending_photos = photos
        self.albums = albums

    def album_update(self, group: str, update_id: str) -> None:
        """Note `update_id` as the latest update of album `group` handled (the older albums
        beyond MAX_ALBUMS are forgotten)."""
        others = [entry for entry in self.albums if entry[0] != group]
        self.albums = (*others[-(MAX_ALBUMS - 1) :], (group, update_id))

    def latest_of_album(self, group: str) -> str | None:
        """The update of album `group` handled last; None if none was noted."""
        return next((update for g, update in self.albums if g == group), None)

    @property
    def place(self) -> tuple[Step, str | None]:
        """The step and the question: what the choices shown belong to."""
        return self.step, self.question

    def to_json(self) -> dict[str, Any]:
        """The JSON object the store keeps: only what is set, under the keys always used."""
        out: dict[str, Any] = {}
        if self.step is not Step.IDLE:
            out["mode"] = self.step.value
        if self.question is not None:
            out["q"] = self.question
        if self.pending is not None:
            out["pending"] = self.pending
        if self.editing:
            out["editing"] = True
        if self.draft is not None:
            out["draft"] = self.draft
        if self.period is not None:
            out["period"] = str(self.period)
        if self.offer:
            out["offer"] = [[o.key, o.words, o.payload] for o in self.offer]
        if self.pending_photos:
            out["pending_photos"] = list(self.pending_photos)
        if self.pending_location is not None:
            out["pending_location"] = self.pending_location
        if self.locale is not None:
            out["locale"] = self.locale
        if self.phone is not None:
            out["phone"] = self.phone
        if self.albums:
            out["albums"] = [list(entry) for entry in self.albums]
        if self.review is not None:
            out["review"] = self.review
        if self.concerned:
            out["concerned"] = list(self.concerned)
        return out

    @classmethod
    def from_json(cls, data: object) -> ConversationState:
        """The state a stored object describes; never raises (see the module's docstring)."""
        if not isinstance(data, dict):
            return cls()
        return cls(
            step=_step(data.get("mode")),
            question=_text(data.get("q"), _QUESTION_ID),
            pending=_text(data.get("pending")),
            editing=data.get("editing") is True,
            draft=_id(data.get("draft")),
            period=_period(data.get("period")),
            offer=_offer(data.get("offer")),
            pending_photos=_ids(data.get("pending_photos")),
            pending_location=_location(data.get("pending_location")),
            locale=data.get("locale") if data.get("locale") in i18n.SUPPORTED else None,
            phone=_text(data.get("phone"), _PHONE),
            albums=_albums(data.get("albums")),
            review=_id(data.get("review")),
            concerned=_questions(data.get("concerned")),
        )


def _step(value: object) -> Step:
    if isinstance(value, str):
        try:
            return Step(value)
        except ValueError:
            pass
    return Step.IDLE  # no mode, or one this version does not know


def _text(value: object, shape: re.Pattern[str] | None = None, limit: int = 1000) -> str | None:
    if not isinstance(value, str) or len(value) > limit:
        return None
    if shape is not None and not shape.fullmatch(value):
        return None
    return value


def _id(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        return None
    return value


def _ids(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    found = (_id(v) for v in value[:MAX_PHOTOS_KEPT])
    return tuple(dict.fromkeys(v for v in found if v is not None))


def _period(value: object) -> Period | None:
    if not isinstance(value, str) or len(value) != 7:
        return None
    try:
        return Period.parse(value)
    except ValueError:
        return None


def _location(value: object) -> str | None:
    return value if isinstance(value, str) and valid_where(value) else None


def _offer(value: object) -> tuple[Offered, ...]:
    """The well-formed [key, words, payload] entries of a stored offer."""
    if not isinstance(value, list):
        return ()
    return tuple(
        Offered(*entry)
        for entry in value
        if isinstance(entry, list) and len(entry) == 3 and all(isinstance(x, str) for x in entry)
    )


def _questions(value: object) -> tuple[str, ...]:
    """The well-formed question ids of a stored list, each once."""
    if not isinstance(value, list):
        return ()
    found = (_text(v, _QUESTION_ID) for v in value[:MAX_CONCERNED])
    return tuple(dict.fromkeys(v for v in found if v is not None))


def _albums(value: object) -> tuple[tuple[str, str], ...]:
    """The well-formed [group, update id] entries of stored albums, one per group (the last),
    the newest MAX_ALBUMS."""
    if not isinstance(value, list):
        return ()
    found: dict[str, str] = {}
    for entry in value[-100:]:
        if not isinstance(entry, list) or len(entry) != 2:
            continue
        group, update = (_text(x, limit=_ALBUM_KEY_LIMIT) for x in entry)
        if group and update:
            found.pop(group, None)
            found[group] = update
    return tuple(found.items())[-MAX_ALBUMS:]
