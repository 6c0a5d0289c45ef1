"""The bulk gate (bot/channels/pacing.py) on a fake clock: never more than 30 requests in any
window of 1 s and its margin, counted on the times the requests went; near 30 a second when
nothing hinders it, even with a ledger commit between a turn and its request; a late timer
made good; a 429's pause ends without a burst."""

from __future__ import annotations

import asyncio
import itertools
import random

from bot.channels.pacing import BULK_LIMIT, BULK_WINDOW, MAX_PENDING, Gate


class Clock:
    """Time that passes only when someone sleeps (or `pass_`); a timer fires up to `late` s late."""

    def __init__(self, late: float = 0.0, seed: int = 0) -> None:
        self.now = 1000.0
        self.late = late
        self.random = random.Random(seed)

    def time(self) -> float:
        return self.now

    def pass_(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0) + self.random.uniform(0, self.late)
        await asyncio.sleep(0)


def gate(clock: Clock) -> Gate:
    return Gate(BULK_LIMIT, BULK_WINDOW, clock=clock.time, sleep=clock.sleep)


def most_in_a_window(sent: list[float], window: float) -> int:
    """The most requests in any `window` seconds (a request `window` after another is
    outside that one's window, as Telegram's stand-in counts; to a nanosecond, for the sums
    of floats)."""
    most, first = 0, 0
    for last, at in enumerate(sent):
        while at - sent[first] >= window - 1e-9:
            first += 1
        most = max(most, last - first + 1)
    return most


async def send(
    g: Gate, clock: Clock, count: int, claim: float = 0.0, trip: float = 0.002
) -> list[float]:
    """`count` requests one after another, `claim` seconds between turn and request, each
    answered `trip` seconds after it went."""
    sent: list[float] = []
    for _ in range(count):
        given = await g.turn()
        clock.pass_(claim)
        request = await g.go(given)
        g.release()
        sent.append(clock.time())
        clock.pass_(trip)
        g.answered(request)
    return sent


def rate(sent: list[float]) -> float:
    return (len(sent) - 1) / (sent[-1] - sent[0])


async def test_never_more_than_30_in_any_window_whatever_the_timing() -> None:
    """Claims of 0-60 ms, timers up to 20 ms late, stalls of the loop, turns given before
    their requests go (as many as the gate gives), in any order: still at most 30 in any
    1.015 s."""
    clock = Clock(late=0.02, seed=7)
    g = gate(clock)
    pick = random.Random(11)
    given: list[float] = []
    sent: list[float] = []
    while len(sent) < 3000:
        if len(given) < MAX_PENDING and (not given or pick.random() < 0.5):
            given.append(await g.turn())
        else:
            at = given.pop(pick.randrange(len(given)))
            clock.pass_(pick.uniform(0, 0.06))
            if pick.random() < 0.01:
                clock.pass_(pick.uniform(0.1, 0.4))  # the event loop was busy
            request = await g.go(at)
            g.release()
            sent.append(clock.time())
            clock.pass_(pick.uniform(0.001, 0.03))
            g.answered(request)
    assert sent == sorted(sent)
    assert most_in_a_window(sent, BULK_WINDOW) <= BULK_LIMIT


async def test_a_quick_claim_after_slow_ones_waits_for_the_window() -> None:
    """Turns are given early by the recent claims' time: when a claim is quicker than those,
    its request waits the difference rather than make 31 in a window."""
    clock = Clock()
    g = gate(clock)
    sent = await send(g, clock, 60, claim=0.03, trip=0.0)
    sent += await send(g, clock, 60, claim=0.0, trip=0.0)
    assert most_in_a_window(sent, BULK_WINDOW) == BULK_LIMIT


async def test_a_request_slow_on_the_way_counts_in_the_window_that_much_longer() -> None:
    """Telegram counts a request when it arrives: one answered 40 ms after it went may have
    arrived that late, beyond the window's 15 ms margin; the request 30 after it waits the
    difference, and 31 never *arrive* within one second."""
    clock = Clock()
    g = gate(clock)
    sent = await send(g, clock, 45)
    slow = len(sent)
    sent += await send(g, clock, 1, trip=0.04)
    sent += await send(g, clock, 45)
    assert sent[slow + 30] - sent[slow] >= 1.0 + 0.04 - 1e-9
    arrived = sorted(at + (0.039 if n == slow else 0.001) for n, at in enumerate(sent))
    assert most_in_a_window(arrived, 1.0) == BULK_LIMIT


async def test_unhindered_it_sends_near_30_a_second() -> None:
    clock = Clock()
    sent = await send(gate(clock), clock, 600)
    assert rate(sent) >= 29.5
    assert most_in_a_window(sent, BULK_WINDOW) == BULK_LIMIT
    # evenly: never two requests closer than the spacing of 30 in a window
    assert min(b - a for a, b in itertools.pairwise(sent)) >= BULK_WINDOW / BULK_LIMIT - 1e-9


async def test_the_ledger_commit_before_each_request_does_not_slow_it() -> None:
    """10 ms between each turn and its request (the reminder's ledger row): the turns are
    given that much early, so the requests still go at 29.5 a second, without waiting."""
    clock = Clock()
    sent = await send(gate(clock), clock, 600, claim=0.01)
    assert rate(sent) >= 29.5
    assert most_in_a_window(sent, BULK_WINDOW) == BULK_LIMIT


async def test_late_timers_and_a_stall_are_made_good() -> None:
    """Timers up to 5 ms late, and once the loop stalls for 300 ms: the next requests come
    sooner, as far as the window allows, and the run ends nearly when it would have."""
    punctual = Clock()
    on_time = await send(gate(punctual), punctual, 900)
    clock = Clock(late=0.005, seed=3)
    g = gate(clock)
    sent = await send(g, clock, 300)
    clock.pass_(0.3)
    sent += await send(g, clock, 600)
    assert most_in_a_window(sent, BULK_WINDOW) == BULK_LIMIT
    took, would_have = sent[-1] - sent[0], on_time[-1] - on_time[0]
    assert took - would_have < 0.15  # a fixed grid would end 0.3 s and ~4.5 ms × 900 late


async def test_a_pause_holds_every_request_and_ends_without_a_burst() -> None:
    clock = Clock()
    g = gate(clock)
    await send(g, clock, 50)
    given = await g.turn()  # claimed, its request about to go
    g.pause(1.1)  # another request was refused with 429
    paused_at = clock.time()
    g.answered(await g.go(given))
    g.release()
    assert clock.time() >= paused_at + 1.1
    after = await send(g, clock, 10)
    assert after[0] >= paused_at + 1.1
    assert min(b - a for a, b in itertools.pairwise(after)) >= BULK_WINDOW / BULK_LIMIT - 1e-9


async def test_a_turn_given_back_is_not_counted() -> None:
    """A turn whose request does not go (another sender had claimed the reminder) leaves the
    window to the others."""
    clock = Clock()
    g = gate(clock)
    for _ in range(40):
        await g.turn()
        g.release()
    started = clock.time()
    sent = await send(g, clock, 30)
    assert sent[-1] - started < 1.1  # not held up by 40 turns that never went


async def test_slow_claims_hold_the_turns_back_rather_than_pile_up() -> None:
    """Sixteen senders whose ledger commit takes 0.2 s, six times the spacing (a busy
    machine): never more than MAX_PENDING turns given whose request has not gone, so a kill
    -9 loses no more claimed reminders than that, whatever the load."""
    clock = Clock()
    g = gate(clock)
    waiting = most = 0
    sent: list[float] = []

    async def sender(count: int) -> None:
        nonlocal waiting, most
        for _ in range(count):
            given = await g.turn()
            waiting += 1
            most = max(most, waiting)
            await clock.sleep(0.2)  # the claim's commit
            request = await g.go(given)
            waiting -= 1
            g.release()
            sent.append(clock.time())
            g.answered(request)

    await asyncio.gather(*(sender(5) for _ in range(16)))
    assert len(sent) == 80
    assert most == MAX_PENDING
