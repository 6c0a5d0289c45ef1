"""What a handler works with: the store, the settings it needs, the clock and the calendar."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain import i18n
from domain.calendar import Calendar
from domain.state import ConversationState
from domain.subjects import Subject
from handlers import payloads
from handlers.outbox import Answered, Later
from handlers.port import Incoming
from store.images import Inspector
from store.models import AuditLog, Conversation, Person, Report


def _no_link(token: str) -> str | None:
    return None


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Config:
    calendar: Calendar = field(default_factory=lambda: Calendar(ZoneInfo("Asia/Ho_Chi_Minh")))
    data_dir: Path = Path("data")
    default_locale: str = "vi"
    # the link that opens an invitation on the channel (Telegram: t.me/<bot>?start=<token>);
    # None: the person types the code (Zalo has no such link)
    invite_link: Callable[[str], str | None] = _no_link
    max_photos: int = 10
    max_photo_bytes: int = 10 * 1024 * 1024
    inspector: Inspector = field(default_factory=Inspector)  # decodes photos off the event loop
    invite_days: int = 14
    # a photo taken more than this before its period, or farther from its cluster, is flagged
    photo_max_age_days: int = 60
    photo_max_distance_m: int = 3000

    @property
    def zone(self) -> ZoneInfo:
        return self.calendar.zone


Seen = tuple[str, str]  # (role, locale) of the active person found behind a chat


class Members:
    """Who this process last found behind each chat whose update it handled: the active
    person's role and locale, or None for nobody; for `ttl` seconds (the newest `keep`). A
    person's photos are downloaded without asking the store first, and the Telegram channel
    sets the chat's menu from it. The update's transaction still decides; another process
    withdrawing someone's access is seen within `ttl`, or at their next update."""

    def __init__(self, keep: int = 10_000, ttl: float = 600.0) -> None:
        self._keep, self._ttl = keep, ttl
        self._seen: OrderedDict[tuple[str, str], tuple[float, Seen | None]] = OrderedDict()

    def handled(self, channel: str, chat_id: str, person: Seen | None) -> None:
        key = (channel, chat_id)
        self._seen.pop(key, None)
        self._seen[key] = (time.monotonic() + self._ttl, person)
        if len(self._seen) > self._keep:
            self._seen.popitem(last=False)

    def found(self, channel: str, chat_id: str) -> tuple[bool, Seen | None]:
        """Whether the chat was seen lately, and who was found behind it."""
        until, person = self._seen.get((channel, chat_id), (0.0, None))
        return time.monotonic() < until, person

    def __contains__(self, key: tuple[str, str]) -> bool:
        """A person was found behind the chat lately."""
        known, person = self.found(*key)
        return known and person is not None


@dataclass
class Deps:
    sessions: async_sessionmaker[AsyncSession]
    config: Config
    clock: Callable[[], datetime] = _now
    answered: Answered = field(default_factory=Answered)  # by this process (handlers.outbox)
    members: Members = field(default_factory=Members)  # chats lately handled as a person's

    @property
    def calendar(self) -> Calendar:
        return self.config.calendar


@dataclass
class Ctx:
    """One update being handled, inside one transaction."""

    session: AsyncSession
    deps: Deps
    incoming: Incoming
    conversation: Conversation
    person: Person | None
    state: ConversationState
    # read once per update, then kept up to date by this update's own changes: a subject's
    # last report, and the number of photos of a draft
    last_reports: dict[Subject, Report | None] = field(default_factory=dict)
    photo_counts: dict[int, int] = field(default_factory=dict)
    # the photos (SHA-256) whose row this update's transaction holds
    recorded_photos: set[str] = field(default_factory=set)
    # what was noticed about this update's photos, told to the sender (handlers.integrity)
    photo_notices: list[str] = field(default_factory=list)
    # work to do once this update's transaction has committed (handlers.later)
    later: list[Later] = field(default_factory=list)

    @property
    def locale(self) -> str:
        if self.person is not None:
            return self.person.locale
        return self.state.locale or self.deps.config.default_locale

    @property
    def pressed(self) -> payloads.Pressed | None:
        """The button this update tapped (or the choice typed for one), read; None if none."""
        return payloads.read(self.incoming.payload)

    def _(self, message: str) -> str:
        return i18n.gettext_for(self.locale)(message)

    @property
    def now(self) -> datetime:
        return self.deps.clock()

    def audit(self, action: str, entity: str, entity_id: str, detail: dict[str, Any]) -> None:
        """Record what this person did, over which channel, in the audit log."""
        person = self.person
        self.session.add(
            AuditLog(
                actor_person_id=person.id if person else None,
                actor=person.full_name if person else "",
                channel=self.incoming.channel,
                action=action,
                entity=entity,
                entity_id=entity_id,
                detail=detail,
            )
        )
