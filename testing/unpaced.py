"""`ccn-bot` as shipped but for one thing, for the end-to-end tests whose subject is not
Telegram's pace: a chat's messages are not held to one a second after a burst of four
(bot/channels/pacing.py). The people of those tests answer the moment the bot asks, as nobody on
a phone does, so each of their steps after the fourth waited about a second for that pace (a
15-step report, ~12 s of waiting). The bulk pace (reminders) and everything else are as shipped;
the tests of the pace itself (tests/test_rush.py, tests/test_reminders_telegram.py,
tests/test_two_workers_rush.py, tests/test_crash_safety.py) run the bot as shipped.

`python -m testing.unpaced run` is `python -m bot run` so; `chat_pace_lifted()` does the same for
a bot run in the test's own process (tests/inprocess.py)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from unittest import mock

from bot.channels import pacing

ARGV = [sys.executable, "-m", "testing.unpaced"]  # + the command's arguments ("run")


@contextlib.contextmanager
def chat_pace_lifted() -> Iterator[None]:
    """Within the block, a chat's messages go out without waiting for its pace."""
    with mock.patch.multiple(pacing, CHAT_BURST=10**9, CHAT_PER_SECOND=1e9):
        yield


if __name__ == "__main__":
    from bot.cli import main

    with chat_pace_lifted():
        main()
