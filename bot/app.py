"""Start-up and shut-down: settings → engine → migrations → registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.settings import Settings
from handlers.context import Config, Deps
from store.db import make_engine, make_sessionmaker, unit_of_work, upgrade
from store.seed import SeedCounts, load_registry, registry_loaded


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    def deps(self, bot_username: str = "") -> Deps:
        s = self.settings
        config = Config(
            calendar=s.calendar(),
            data_dir=s.data_dir,
            default_locale=s.default_locale,
            bot_username=bot_username or s.telegram_bot_username,
            max_photos=s.max_photos,
            max_photo_bytes=s.max_photo_mb * 1024 * 1024,
            invite_days=s.invite_days,
        )
        return Deps(self.sessions, config)


@asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[App]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        yield App(settings, engine, make_sessionmaker(engine))
    finally:
        await engine.dispose()


async def prepare(app: App) -> SeedCounts | None:
    """Migrate to the newest schema; load the plan's registry into an empty database."""
    await upgrade(app.engine)
    async with unit_of_work(app.sessions) as session:
        if await registry_loaded(session):
            return None
        return await load_registry(session)
