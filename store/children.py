"""For the bot's child processes (store.images.Inspector, reports.offload): end with the bot,
and give way to it."""

from __future__ import annotations

import multiprocessing
import os
import threading


def exit_with_parent() -> None:
    """A pool's `initializer`: the child ends when the bot does, even by kill -9 (a pool's
    worker waits for work on a pipe it holds both ends of, so it would wait forever)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# How much lower a child's CPU priority is than the bot's (nice(2)): the event loop and the
# database answer the chats; a photo's decoding or a month's files can wait for a free core.
NICENESS = 10


def background() -> None:
    """A pool's `initializer`: `exit_with_parent`, and the child's priority lowered by
    NICENESS, so that in the seconds when everyone sends a photo the decoding takes the CPU the
    event loop and PostgreSQL leave, not a share of theirs."""
    exit_with_parent()
    os.nice(NICENESS)
