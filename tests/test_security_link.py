"""/lienket codes cannot be guessed: 8 digits, a few wrong tries per chat, and a code is burnt
once too many wrong codes were tried city-wide during its life. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.app import App
from handlers.context import Deps
from store.models import ChannelIdentity
from tests.dialog import Chat, Clock, play
from tests.test_dialogs import investor

LIMITED = "Bạn đã nhập sai mã quá nhiều lần. Xin thử lại sau 15 phút."
STRANGER = "chưa được mời"


def wrong(code: str, n: int) -> str:
    """A well-formed code that is not `code`."""
    return f"{(int(code) + 1 + n) % 100_000_000:08d}"


async def new_code(chat: Chat) -> str:
    code = (await chat.say("/lienket")).rsplit(" ", 1)[1].strip()
    assert code.isdigit() and len(code) == 8, code
    return code


async def identities(app: App, chat_id: str) -> int:
    async with app.sessions() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(ChannelIdentity)
            .where(ChannelIdentity.external_id == chat_id)
        )
    return int(found or 0)


async def test_a_chat_that_guesses_is_refused_for_a_while(
    deps: Deps, app: App, clock: Clock
) -> None:
    owner = await investor(deps)
    code = await new_code(owner)
    guesser = Chat(deps, chat_id="6666", channel="zalo")
    await play(guesser, [(wrong(code, n), f"{STRANGER} | !{LIMITED}") for n in range(5)])
    await play(
        guesser,
        [
            (code, f"{LIMITED} | !Đã liên kết"),  # even the right code: too many wrong ones
            (f"/lienket {code}", f"{LIMITED} | !Đã liên kết"),
            ("xin chào", f"{STRANGER} | !{LIMITED}"),  # ordinary text: the usual answer
        ],
    )
    assert await identities(app, "6666") == 0
    # another chat is not affected, and the code still works there
    await play(Chat(deps, chat_id="7777", channel="zalo"), [(code, "Đã liên kết")])
    # a quarter of an hour later the guesser may try again
    clock.now += timedelta(minutes=16)
    code = await new_code(owner)
    await play(guesser, [(code, "Đã liên kết")])


async def test_a_code_is_burnt_after_too_many_wrong_codes_city_wide(
    deps: Deps, app: App, clock: Clock
) -> None:
    owner = await investor(deps)
    code = await new_code(owner)
    for n, chat_id in enumerate(("a1", "a2", "a3")):  # three chats, each under its own limit
        guesser = Chat(deps, chat_id=chat_id, channel="zalo")
        for k in range(4):
            clock.now += timedelta(seconds=10)
            await play(guesser, [(wrong(code, 10 * n + k), STRANGER)])
    # twelve wrong codes while it lived: the code no longer links anything
    await play(Chat(deps, chat_id="a4", channel="zalo"), [(code, f"{STRANGER} | !Đã liên kết")])
    assert await identities(app, "a4") == 0
    # a code asked for afterwards works
    code = await new_code(owner)
    await play(Chat(deps, chat_id="a5", channel="zalo"), [(code, "Đã liên kết")])
