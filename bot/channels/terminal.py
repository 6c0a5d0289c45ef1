"""The terminal chat: the demo channel that needs no token."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers import lookup
from handlers.port import Incoming, Reply


def render(reply: Reply, out: TextIO) -> list[str]:
    """Print a reply; numbered buttons can be chosen by typing their number."""
    print(reply.text, file=out)
    payloads: list[str] = []
    for row in reply.buttons:
        for button in row:
            payloads.append(button.payload)
            print(f"  [{len(payloads)}] {button.label}", file=out)
    return payloads


async def chat(
    sessions: async_sessionmaker[AsyncSession],
    locale: str,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> None:
    payloads: list[str] = []
    for reply in await lookup.handle(
        Incoming("terminal", "local", "/start", locale=locale), sessions
    ):
        payloads = render(reply, out)
    while True:
        print("> ", end="", file=out, flush=True)
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            print(file=out)
            return
        text = line.strip()
        payload = None
        if text.isdigit() and 0 < int(text) <= len(payloads):
            payload = payloads[int(text) - 1]
        incoming = Incoming("terminal", "local", text, payload=payload, locale=locale)
        for reply in await lookup.handle(incoming, sessions):
            payloads = render(reply, out)
