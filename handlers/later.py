"""Work an update asks for that runs after its transaction has committed, outside it.

`/tonghop` for the whole city reads the month and writes its files for seconds; done inside
the update's transaction, it made every other update wait that long (on SQLite the
transactions of one process take turns, store.db.unit_of_work; on PostgreSQL the reading held
the event loop). A handler appends a `Later` to `ctx.later` instead; handlers.conversation
runs it once the transaction has committed and sends its replies after the update's own. The
job is kept as data with the update's replies (handlers.outbox): if the process dies before
the answer went out, the update's redelivery runs it again."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from domain import i18n
from handlers.context import Deps
from handlers.outbox import Later
from handlers.port import Reply

__all__ = ["Job", "Later", "job", "run"]

log = logging.getLogger(__name__)

Job = Callable[[Deps, dict[str, str]], Awaitable[list[Reply]]]
_jobs: dict[str, Job] = {}


def job(name: str) -> Callable[[Job], Job]:
    """Register a function as the job `name` (at import, by the handler that asks for it)."""

    def register(fn: Job) -> Job:
        _jobs[name] = fn
        return fn

    return register


async def run(deps: Deps, later: Sequence[Later]) -> list[Reply]:
    """The jobs' replies, in turn; one that fails is logged and apologised for (in its
    `locale` argument's language, else the default)."""
    replies: list[Reply] = []
    for work in later:
        try:
            replies += await _jobs[work.job](deps, work.args)
        except Exception:
            log.exception("work %s %s after the commit failed", work.job, work.args)
            _ = i18n.gettext_for(work.args.get("locale", deps.config.default_locale))
            replies.append(
                Reply(_("Sorry, something went wrong. Please send that again in a moment."))
            )
    return replies
