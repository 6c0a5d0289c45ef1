"""For the bot's child processes (store.images.Inspector, reports.offload): end with the bot."""

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
