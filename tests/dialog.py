"""Conversation tests as tables of what the person sends and what the bot must answer.

A step is (says, answers):
- says: plain text is typed; `[label]` taps the button whose label contains `label` (accents
  and case ignored) in the bot's last replies; `📷 name` sends the test image `name`;
  `📎 name` sends it as a file (document); `📍 lat lon` shares a location.
- answers: every ` | `-separated piece must appear in the bot's replies (their texts and
  button labels); `!piece` must not;
  an empty string checks nothing.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from PIL import Image
from sqlalchemy import select

from domain.roles import Role
from domain.text import fold
from handlers import conversation
from handlers.context import Deps
from handlers.port import Attachment, Button, Incoming, Reply
from store.db import unit_of_work
from store.models import Cluster, Person, Report

_updates = itertools.count(1)


def image(color: str = "red", size: tuple[int, int] = (64, 48), fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


IMAGES: dict[str, tuple[bytes, str]] = {
    "red.jpg": (image("red"), "image/jpeg"),
    "blue.jpg": (image("blue"), "image/jpeg"),
    "green.png": (image("green", fmt="PNG"), "image/png"),
    "fake.jpg": (b"%PDF-1.4 this is not a photo", "image/jpeg"),
}


@dataclass
class Chat:
    deps: Deps
    chat_id: str = "1001"
    channel: str = "terminal"
    name: str = "Nguyễn Văn A"
    replies: list[Reply] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    @property
    def buttons(self) -> list[Button]:
        return [b for r in self.replies for row in r.buttons for b in row]

    @property
    def text(self) -> str:
        """What the person sees: the replies' texts and their buttons' labels."""
        lines = [r.text for r in self.replies]
        if self.buttons:
            lines.append(" ".join(f"[{b.label}]" for b in self.buttons))
        return "\n".join(lines)

    async def send(self, incoming: Incoming) -> str:
        self.replies = await conversation.handle(incoming, self.deps)
        self.transcript.append(
            f"» {incoming.text or incoming.payload or incoming.location or '📷'}"
        )
        self.transcript.extend(f"« {line}" for line in self.text.splitlines())
        return self.text

    def incoming(self, **kwargs: object) -> Incoming:
        base = Incoming(
            self.channel, self.chat_id, update_id=f"u{next(_updates)}", display_name=self.name
        )
        return replace(base, **kwargs)  # type: ignore[arg-type]

    async def say(self, text: str) -> str:
        return await self.send(self.incoming(text=text))

    async def tap(self, label: str) -> str:
        wanted = fold(label)
        for button in self.buttons:
            if wanted in fold(button.label):
                return await self.send(self.incoming(payload=button.payload))
        raise AssertionError(
            f"no button {label!r} among {[b.label for b in self.buttons]}\n" + self.log()
        )

    async def photo(self, name: str, *, document: bool = False, group: str | None = None) -> str:
        data, mime = IMAGES[name]

        async def fetch() -> bytes:
            return data

        attachment = Attachment(
            "document" if document else "photo", fetch, file_name=name, mime=mime
        )
        return await self.send(self.incoming(attachments=(attachment,), media_group_id=group))

    async def step(self, says: str) -> str:
        if says.startswith("[") and says.endswith("]"):
            return await self.tap(says[1:-1])
        if says.startswith("📷 "):
            return await self.photo(says[2:].strip())
        if says.startswith("📎 "):
            return await self.photo(says[2:].strip(), document=True)
        if says.startswith("📍 "):
            lat, lon = (float(x) for x in says[2:].split())
            return await self.send(self.incoming(location=(lat, lon)))
        return await self.say(says)

    def log(self) -> str:
        return "\n".join(self.transcript[-30:])


class Player(Protocol):
    """Anything a table can be played with: the in-process chat, or a person talking to the
    real `ccn-bot run` through a stand-in messenger."""

    @property
    def buttons(self) -> list[Button]: ...

    @property
    def text(self) -> str: ...

    async def step(self, says: str) -> str: ...

    async def say(self, text: str) -> str: ...

    async def tap(self, label: str) -> str: ...

    def log(self) -> str: ...


async def play(chat: Player, table: Iterable[tuple[str, str]]) -> None:
    for says, expected in table:
        answer = await chat.step(says)
        for piece in filter(None, (p.strip() for p in expected.split(" | "))):
            if piece.startswith("!"):
                assert piece[1:] not in answer, f"{says!r} → unexpected {piece[1:]!r}\n{chat.log()}"
            else:
                assert piece in answer, f"{says!r} → expected {piece!r}\n{chat.log()}"


@dataclass
class Clock:
    """A fixed clock the tests move by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def fixed(deps: Deps, clock: Callable[[], datetime]) -> Deps:
    return Deps(deps.sessions, deps.config, clock)


async def finish(
    chat: Player, *, prefer: tuple[str, ...] = ("Không thay đổi",), limit: int = 300
) -> None:
    """Answer whatever is asked until the summary's submit button shows: a preferred button if
    there is one, else the first button, else a value that fits the question."""
    for _ in range(limit):
        labels = [b.label for b in chat.buttons]
        if "Gửi báo cáo" in labels or "Submit report" in labels:
            return
        chosen = next((p for p in prefer if p in labels), labels[0] if labels else None)
        if chosen is not None:
            await chat.tap(chosen)
        elif "ngày" in chat.text:
            await chat.say("01/05/2021")
        else:
            await chat.say("10")
    raise AssertionError("the form never ended\n" + chat.log())


async def file_may_report(deps: Deps, answers: dict[str, Any], code: str = "dai-thang") -> None:
    """May 2021's report of a founded cluster, on time, filed by its investor: the earlier
    answers a June report is compared with (a figure going down, "unchanged")."""
    hanoi = ZoneInfo("Asia/Ho_Chi_Minh")
    async with unit_of_work(deps.sessions) as session:
        cluster = await session.scalar(select(Cluster).where(Cluster.code == code))
        person = await session.scalar(select(Person).where(Person.role == Role.INVESTOR))
        assert cluster is not None and person is not None
        session.add(
            Report(
                reference="BC-202105-00001",
                subject=f"cluster:{code}",
                cluster_id=cluster.id,
                period="2021-05",
                form="founded",
                form_version=1,
                version=1,
                answers=answers,
                submitted_at=datetime(2021, 5, 20, 9, 0, tzinfo=hanoi),
                submitted_by_person_id=person.id,
                channel="telegram",
                deadline_at=datetime(2021, 5, 25, 0, 0, tzinfo=hanoi),
                on_time=True,
            )
        )
