"""A person in one chat of the stand-in Telegram, as the deadline rush benchmark
(benchmarks/deadline_rush.py) and the crash-safety crowd (testing/crowd.py) play them: what
they type and tap, and how they answer the photos question. Each says how it sends an update
and what it waits for (`send`)."""

from __future__ import annotations

import abc
import random
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from testing.standin_telegram import StandinBotAPI

Answer = TypeVar("Answer")


class ChatUser(abc.ABC, Generic[Answer]):
    def __init__(self, chat: int, photo: bytes, rng: random.Random) -> None:
        self.chat = chat
        self.photo = photo  # the one photo they send
        self.rng = rng
        self.photo_sent = False
        self.problems: list[str] = []  # what went wrong: their report is not finished

    @property
    @abc.abstractmethod
    def api(self) -> StandinBotAPI: ...

    @abc.abstractmethod
    async def send(self, what: str, action: Callable[[], int]) -> Answer:
        """Send one update (`action` sends it and returns its id); what came back."""

    def say(self, text: str) -> Callable[[], int]:
        return lambda: self.api.send_text(self.chat, text, first_name=f"CĐT {self.chat}")

    def tap(self, message: dict[str, Any], data: str) -> Callable[[], int]:
        return lambda: self.api.press_button(self.chat, data, message["message_id"])

    def buttons(self, message: dict[str, Any]) -> list[str]:
        return [data for row in self.api.keyboard(message) for _label, data in row]

    async def answer_photos(self, message: dict[str, Any], datas: list[str]) -> Answer:
        """The photos question (`datas`: its buttons): their photo, then Done (or Skip)."""
        if not self.photo_sent:
            self.photo_sent = True
            return await self.send("photo", lambda: self.api.send_photo(self.chat, self.photo))
        done = [d for d in datas if d.startswith(("done:", "skip:"))]
        return await self.send("photos-done", self.tap(message, done[0]))
