"""The message port: what a channel hands to the handlers, what it renders back, and how it
sends a message outside a conversation (reminders, notices to an admin)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from store.photos import Prepared


@dataclass(frozen=True)
class Button:
    label: str
    payload: str
    key: str = ""  # what to type on a channel without buttons (handlers.choices assigns it)
    listed: bool = True  # False: the reply's text already says how to choose it


@dataclass(frozen=True)
class Attachment:
    """A photo, or an image or file sent as a document; `fetch` downloads its bytes."""

    kind: str  # photo | document
    fetch: Callable[[], Awaitable[bytes]]
    file_name: str = ""
    mime: str = ""  # as the sender claims; the photo store checks the bytes
    caption: str = ""
    # set by conversation.handle before the transaction: the photo checked and on disk, or
    # why it was refused (store.photos.PhotoRejected's reason)
    prepared: Prepared | None = None
    refused: str = ""


@dataclass(frozen=True)
class Incoming:
    channel: str  # telegram | zalo | terminal
    chat_id: str
    text: str = ""
    payload: str | None = None  # a tapped button's payload
    update_id: str | None = None
    locale: str | None = None  # the messenger's language for this user, if known
    display_name: str = ""
    attachments: tuple[Attachment, ...] = ()
    location: tuple[float, float] | None = None
    media_group_id: str | None = None  # photos sent together as an album
    typed_choices: bool = False  # the channel shows choices as keys to type (no buttons)
    phone: str | None = None  # a phone number the person shared (Zalo's user info form)
    asks_contact: bool = False  # the channel has a form that asks for the phone (Zalo)


@dataclass(frozen=True)
class Photo:
    path: Path
    caption: str = ""


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: list[list[Button]] = field(default_factory=list)
    photos: tuple[Photo, ...] = ()
    file: Path | None = None
    free_input: bool = False  # a typed number or text answers it: choices get letter keys
    ask_contact: bool = False  # ask for the person's phone with the channel's own form
    # what a templated notice needs (Zalo ZNS outside the messaging window): name, subject,
    # period, deadline — each a short value the channel fits to its template's limits
    facts: tuple[tuple[str, str], ...] = ()


class Delivery(enum.StrEnum):
    SENT = "sent"
    BLOCKED = "blocked"  # the person blocked the bot (Telegram 403)
    UNREACHABLE = "unreachable"  # cannot be messaged now (Zalo: outside the window, no ZNS)
    FAILED = "failed"


class Notifier(Protocol):
    """A channel that can send a message outside a conversation."""

    channels: frozenset[str]

    def turn(self, channel: str, chat_id: str) -> AbstractAsyncContextManager[None]:
        """Wait until the channel's pace lets one more notice go to that chat; the send in
        the block goes out at once. (A reminder's ledger row is claimed inside: a crash then
        loses only the requests on the wire, not those waiting for their turn.)"""
        ...

    async def send(self, channel: str, chat_id: str, reply: Reply) -> Delivery: ...
