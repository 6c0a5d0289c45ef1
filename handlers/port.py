"""The message port: what a channel hands to the handlers and what it renders back."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Button:
    label: str
    payload: str


@dataclass(frozen=True)
class Incoming:
    channel: str  # telegram | zalo | terminal
    chat_id: str
    text: str = ""
    payload: str | None = None  # a tapped button's payload
    update_id: str | None = None
    locale: str | None = None


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: list[list[Button]] = field(default_factory=list)
