"""The terminal chat: the same conversations as on Zalo, with no token. Works through a pipe:
plain lines in, plain lines out.

Choices show as on Zalo — `[1] Có   [2] Không` — and are answered by typing the key (or the
choice's words); a path to an image file sends it as a photo; `/vitri 20.76 105.9` shares a
location; `/as investor|district|department|admin` switches between the demo people."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import TextIO

from domain.roles import Role
from handlers import conversation
from handlers.context import Deps
from handlers.port import Attachment, Incoming, Reply


def render(reply: Reply, out: TextIO) -> None:
    """Print a reply (its choices are already written into the text, as on Zalo)."""
    print(reply.text, file=out)
    for photo in reply.photos:
        print(f"  [ảnh] {photo.path} {photo.caption}".rstrip(), file=out)
    if reply.file is not None:
        print(f"  [tệp] {reply.file}", file=out)


def _reader(path: Path) -> Attachment:
    async def fetch() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    return Attachment(kind="document", fetch=fetch, file_name=path.name)


def to_incoming(line: str, chat_id: str) -> Incoming:
    text = line.strip()
    # a pipe delivers each line once; choices are typed keys, as on Zalo
    base = Incoming(channel="terminal", chat_id=chat_id, typed_choices=True)
    if text.startswith("/vitri"):
        parts = text.split()[1:]
        try:
            lat, lon = float(parts[0].rstrip(",")), float(parts[1])
        except (IndexError, ValueError):
            return dataclasses.replace(base, text=text)
        return dataclasses.replace(base, location=(lat, lon))
    if text and _is_file(text):
        return dataclasses.replace(base, attachments=(_reader(Path(text).expanduser()),))
    return dataclasses.replace(base, text=text)


def _is_file(text: str) -> bool:
    try:
        candidate = Path(text).expanduser()  # `~50` names a user that may not exist
        return bool(candidate.suffix) and candidate.is_file()
    except (RuntimeError, OSError, ValueError):
        return False


async def chat(
    deps: Deps,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    role: Role = Role.INVESTOR,
) -> None:
    from bot.demo import demo_chat

    chat_id = demo_chat(role)
    print(f"[demo: {role.value}] /as investor|district|department|admin", file=out)
    for reply in await conversation.handle(to_incoming("/trogiup", chat_id), deps):
        render(reply, out)
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
            line = "/trogiup"
        for reply in await conversation.handle(to_incoming(line, chat_id), deps):
            render(reply, out)
