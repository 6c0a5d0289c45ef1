"""The message port: what a channel hands to the handlers and what it renders back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Button:
    label: str
    payload: str


@dataclass(frozen=True)
class Attachment:
    """A photo, or an image or file sent as a document; `fetch` downloads its bytes."""

    kind: str  # photo | document
    fetch: Callable[[], Awaitable[bytes]]
    file_name: str = ""
    mime: str = ""  # as the sender claims; the photo store checks the bytes
    caption: str = ""


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
