"""Crash safety, measured (issue 11, item 3): twenty people file their monthly reports through
the real `ccn-bot run` (long polling against the stand-in Bot API) while the process is killed
with SIGKILL four times and started again on the same database and data folder; on SQLite and
on PostgreSQL.

Nobody re-sends anything by hand: each person waits for the answer to what they sent, through
the kills, because Telegram delivers an update again until the bot confirms it, and the bot
confirms one only after its transaction committed and its answer was sent. An update handled
before a kill but not yet confirmed comes again after the restart, and is answered again with
what was stored with it (the outbox): a kill between a report's commit and its receipt still
gets the person their receipt. Two of the four kills are aimed at that moment (at the next
receipt the bot sends, after a random point in the run); the other two land at random points.

Then, for every person: the one report of their cluster stored once (version 1, no second one
from a "Gửi" handled twice), holding every answer they gave and their photo; no draft left
open; a receipt in the chat after their "Gửi" with the stored reference; and every update they
sent answered. The figures measured (kills, submits caught in flight, commits whose receipt had
not left, downtime) are printed and are part of any failure's message. testing/crowd.py has the
people and the kills."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.deadline_rush import CLOCK_START, Child, bot_environment, log_errors, tail
from bot.settings import load_settings
from testing.crowd import Crowd, CuttingBotAPI, Filed, Reporter, filed, invite_crowd, plan_kills

SEED = 20250624
PEOPLE = 20
KILLS = 4  # testing.crowd.plan_kills: two at random points, two at a receipt about to leave
# updates everyone sends together, about (invitation, /baocao, the questions, photo, Done,
# Gửi): the kills are spread over 10-90 % of it
EXPECTED_UPDATES = PEOPLE * 17
STAGGER = 0.3  # person i opens their invitation i × this many seconds in
RUN_LIMIT = 150.0  # seconds: a run that takes longer than this fails, it does not hang


def check(person: Reporter, store: dict[str, Filed]) -> list[str]:
    """What is wrong with one person's report, in words."""
    wrong = list(person.problems)
    unanswered = [f"{s.what} (update {s.update_id})" for s in person.sent if not s.answered]
    if unanswered:
        wrong.append(f"sent and never answered: {', '.join(unanswered)}")
    entry = store.get(person.invited.cluster, Filed())
    if len(entry.reports) != 1:
        versions = [version for _ref, version, _a, _p in entry.reports]
        wrong.append(f"{len(entry.reports)} reports stored (versions {versions}), not 1")
    for reference, version, answers, photos in entry.reports[:1]:
        if version != 1:
            wrong.append(f"report {reference} is version {version}")
        if entry.submitted_by != {str(person.chat)}:
            wrong.append(f"report {reference} submitted by {entry.submitted_by}")
        stored = {qid: (value or {}).get("v") for qid, value in answers.items()}
        differ = {
            qid: (given, stored.get(qid))
            for qid, given in person.given.items()
            if stored.get(qid) != given
        }
        if differ:
            wrong.append(f"answers given and stored differ (given, stored): {differ}")
        if photos != 1:
            wrong.append(f"report {reference} holds {photos} photos, not 1")
        after = [ref for i, ref in person.receipts() if person.submit and i >= person.submit.before]
        if person.submit is None:
            wrong.append("a report stored though Gửi was never tapped")
        elif reference not in after:
            wrong.append(f"no receipt for {reference} in the chat after Gửi (receipts: {after})")
    if entry.open_drafts and entry.reports:
        wrong.append(f"{entry.open_drafts} drafts still open after the report was submitted")
    return wrong


def figures(crowd: Crowd, elapsed: float, log: Path) -> dict[str, Any]:
    landed = [k for k in crowd.kills if k.landed]
    return {
        "elapsed_s": round(elapsed, 1),
        "bot_starts": crowd.starts,
        "updates_sent": crowd.updates_sent,
        "kills_planned": [
            {
                "after_updates": k.after_updates,
                "after_receipts": k.after_receipts,
                "at_receipt": k.at_receipt,
            }
            for k in crowd.kills
        ],
        "kills_landed": len(landed),
        "kills_at_updates": [k.at_updates for k in landed],
        "kills_at_s": [round(k.at_s, 1) for k in landed],
        "down_s": [round(k.down_s, 2) for k in landed],
        "start_s": [round(k.start_s, 2) for k in landed],
        "submits_in_flight_at_kills": [k.submits_in_flight for k in landed],
        # the interesting case: the report's transaction committed, its receipt not yet sent
        "kills_between_commit_and_receipt": sum(1 for k in landed if k.committed_no_receipt),
        "reports_committed_without_receipt_at_kills": sum(
            len(k.committed_no_receipt) for k in landed
        ),
        "people_with_a_receipt_twice": sum(1 for p in crowd.people if len(p.receipts()) > 1),
        "people_finished": sum(1 for p in crowd.people if p.finished and not p.problems),
        "bot_log_errors": len(log_errors(log)),
        "bot_exit_code": crowd.exit_code,
    }


async def test_kill_9_while_twenty_people_report(prepared_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings = load_settings(DATA_DIR=data_dir, DATABASE_URL=prepared_url)
    clock_start = datetime.fromisoformat(CLOCK_START)
    invited = await invite_crowd(settings, PEOPLE, clock_start)
    api = CuttingBotAPI(token="313131:CRASH-SAFETY", bot_username="ccn_crash_bot")
    await api.start()
    env = bot_environment(
        api,
        data_dir,
        prepared_url,
        # no reminder goes out during the run (the day's are set for the evening)
        REMIND_DAYS="1",
        REMIND_AT="20:00",
        REMINDER_TICK_SECONDS="3600",
    )
    log = tmp_path / "bot.log"
    # forked from an interpreter that imported the bot once: the same `ccn-bot run`, its own
    # process and group, ~2 s of CPU less a start (testing/zygote.py)
    child = Child("shipped", env, tmp_path, log, forked=True)
    crowd = Crowd(api, child, settings, invited, clock_start, SEED)
    kills = plan_kills(random.Random(SEED), PEOPLE, EXPECTED_UPDATES)
    try:
        elapsed = await asyncio.wait_for(crowd.run(kills, STAGGER), RUN_LIMIT)
    finally:
        await child.kill()
        await api.stop()
    store = await filed(settings)
    measured = figures(crowd, elapsed, log)
    print(f"\ncrash safety on {prepared_url.split(':', 1)[0]}: {json.dumps(measured)}")

    wrong = {p.chat: w for p in crowd.people if (w := check(p, store))}
    strays = sorted(set(store) - {p.invited.cluster for p in crowd.people})
    said = f"\nmeasured: {json.dumps(measured)}\nbot log: {' | '.join(tail(log, 4))}"
    assert not wrong, (
        f"{len(wrong)} of {PEOPLE} people:\n"
        + "\n".join(f"  chat {chat}: {'; '.join(w)}" for chat, w in wrong.items())
        + said
    )
    assert not strays, f"reports or drafts of clusters nobody reported for: {strays}{said}"
    assert measured["kills_landed"] >= KILLS - 1, f"too few kills landed{said}"
    assert measured["kills_between_commit_and_receipt"] >= 1, said
    assert crowd.exit_code == 0, f"the last bot did not stop cleanly{said}"
