"""bot.lanes: each chat's updates one at a time, a few chats' at once, and a photo's download
and decoding out of its update's slot (`aside`)."""

from __future__ import annotations

import asyncio

from bot.lanes import Lanes, aside
from tests.test_rush import until


async def test_a_photo_waiting_aside_lets_another_chat_in_and_its_own_chat_wait() -> None:
    """One slot: chat A's photo update waits for its download out of the slot, so chat B is
    answered meanwhile; A's next update still waits for A's photo, and comes after it."""
    lanes = Lanes(at_once=1, aside_at_once=1)
    arrived = asyncio.Event()
    done: list[str] = []

    async def photo() -> None:
        async with lanes.turn("A"):
            async with aside():
                await arrived.wait()
            done.append("A: photo")

    async def text(chat: str) -> None:
        async with lanes.turn(chat):
            done.append(f"{chat}: text")

    first = asyncio.create_task(photo())
    await asyncio.sleep(0.01)
    after = asyncio.create_task(text("A"))
    other = asyncio.create_task(text("B"))
    await until(other.done)
    assert done == ["B: text"]
    arrived.set()
    await asyncio.gather(first, after)
    assert done == ["B: text", "A: photo", "A: text"]


async def test_photos_aside_are_capped_and_a_cancelled_one_gives_back_no_slot_twice() -> None:
    """Two chats' photos with room for one aside: the second waits for the first. A photo
    cancelled while it waits for its slot back holds none, and the lanes still let exactly
    one update in at a time."""
    lanes = Lanes(at_once=1, aside_at_once=1)
    first_arrived, hold_slot = asyncio.Event(), asyncio.Event()
    inside: list[str] = []

    async def photo(chat: str, arrived: asyncio.Event | None) -> None:
        async with lanes.turn(chat), aside():
            inside.append(chat)
            if arrived is not None:
                await arrived.wait()

    async def slow_text() -> None:
        async with lanes.turn("C"):
            await hold_slot.wait()

    a = asyncio.create_task(photo("A", first_arrived))
    await until(lambda: inside == ["A"])
    b = asyncio.create_task(photo("B", None))
    await asyncio.sleep(0.05)
    assert inside == ["A"]  # B's photo waits for room aside
    c = asyncio.create_task(slow_text())  # takes the slot A gave up
    await asyncio.sleep(0.01)
    first_arrived.set()  # A waits for its slot back, which C holds
    await until(lambda: inside == ["A", "B"])
    a.cancel()
    hold_slot.set()
    await asyncio.gather(b, c)
    assert a.cancelled()
    running = 0
    most = 0

    async def count(chat: str) -> None:
        nonlocal running, most
        async with lanes.turn(chat):
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.wait_for(asyncio.gather(*(count(str(n)) for n in range(5))), 5)
    assert most == 1


async def test_aside_outside_a_turn_does_nothing() -> None:
    async with aside():
        pass
