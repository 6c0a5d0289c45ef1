"""The month /tonghop sends is read in one snapshot (store.db.snapshot, from reports.upward in
the files' child): a report filed while it is being read is in all of its figures or in none,
so the summary, the workbook and the document agree."""

from __future__ import annotations

from sqlalchemy import func, select, update

from bot.app import App
from store.db import make_engine, snapshot, unit_of_work, url_of
from store.models import Cluster


async def test_a_snapshot_does_not_see_what_is_committed_after_its_first_read(app: App) -> None:
    url = url_of(app.sessions)
    assert url is not None
    engine = make_engine(url)  # a connection of its own, as the files' child opens
    renamed = select(func.count()).select_from(Cluster).where(Cluster.name == "Đã đổi tên")
    try:
        async with snapshot(engine) as reading:
            assert await reading.scalar(renamed) == 0
            async with unit_of_work(app.sessions) as writing:  # the bot goes on meanwhile
                await writing.execute(update(Cluster).values(name="Đã đổi tên"))
            assert await reading.scalar(renamed) == 0  # as it was at its first read
        async with snapshot(engine) as later:  # the next one sees it
            assert await later.scalar(renamed) == await later.scalar(
                select(func.count()).select_from(Cluster)
            )
    finally:
        await engine.dispose()
