"""The terminal chat: the same conversations as on Telegram, with no token. Works through a
pipe: plain lines in, plain lines out.

Type an answer as on a phone; `#2` (or the button's words) taps button 2; a path to an image
file sends it as a photo; `/vitri 20.76 105.9` shares a location; `/as investor|district|
department|admin` switches between the demo people."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import TextIO

from handlers import conversation
from handlers.context import Deps
from handlers.port import Attachment, Button, Incoming, Reply
from store.models import Role
from store.text import fold


def render(reply: Reply, out: TextIO) -> list[Button]:
    """Print a reply; its buttons are numbered #1, #2, … in reading order."""
    print(reply.text, file=out)
    buttons = [b for row in reply.buttons for b in row]
    if buttons:
        print("  " + "  ".join(f"[#{i}] {b.label}" for i, b in enumerate(buttons, 1)), file=out)
    for photo in reply.photos:
        print(f"  [ảnh] {photo.path} {photo.caption}".rstrip(), file=out)
    if reply.file is not None:
        print(f"  [tệp] {reply.file}", file=out)
    return buttons


def _reader(path: Path) -> Attachment:
    async def fetch() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    return Attachment(kind="document", fetch=fetch, file_name=path.name)


def to_incoming(line: str, chat_id: str, buttons: list[Button]) -> Incoming:
    text = line.strip()
    base = Incoming(channel="terminal", chat_id=chat_id)  # a pipe delivers each line once
    if text.startswith("#") and text[1:].isdigit() and 0 < int(text[1:]) <= len(buttons):
        return dataclasses.replace(base, payload=buttons[int(text[1:]) - 1].payload)
    for button in buttons:
        if text and fold(text) == fold(button.label):
            return dataclasses.replace(base, payload=button.payload)
    if text.startswith("/vitri"):
        parts = text.split()[1:]
        try:
            lat, lon = float(parts[0].rstrip(",")), float(parts[1])
        except (IndexError, ValueError):
            return dataclasses.replace(base, text=text)
        return dataclasses.replace(base, location=(lat, lon))
    candidate = Path(text).expanduser()
    if text and candidate.suffix and candidate.is_file():
        return dataclasses.replace(base, attachments=(_reader(candidate),))
    return dataclasses.replace(base, text=text)


async def chat(
    deps: Deps,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    role: Role = Role.INVESTOR,
) -> None:
    from bot.demo import demo_chat

    chat_id = demo_chat(role)
    print(f"[demo: {role.value}] /as investor|district|department|admin", file=out)
    buttons: list[Button] = []
    for reply in await conversation.handle(Incoming("terminal", chat_id, "/trogiup"), deps):
        buttons = render(reply, out)
    while True:
        print("> ", end="", file=out, flush=True)
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            print(file=out)
            return
        words = line.split()
        if len(words) == 2 and words[0] == "/as" and words[1] in {r.value for r in Role}:
            chat_id = demo_chat(Role(words[1]))
            print(f"[demo: {words[1]}]", file=out)
            buttons = []
            line = "/trogiup"
        for reply in await conversation.handle(to_incoming(line, chat_id, buttons), deps):
            buttons = render(reply, out)
