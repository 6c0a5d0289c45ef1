"""The `ccn-bot` command line."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from bot.app import App, open_app, prepare
from bot.settings import Settings, SettingsError, load_settings
from store import i18n
from store.clusters import (
    COLUMNS,
    ImportRejected,
    RowError,
    all_clusters,
    parse_rows,
    search,
    to_row,
    upsert_clusters,
)
from store.db import current_revision, unit_of_work
from store.seed import load_registry
from store.tables import TableFormatError, read_table, write_table

T = TypeVar("T")

PROBLEMS = {
    "missing_column": i18n.N_("the column is missing from the header"),
    "required": i18n.N_("a value is required"),
    "bad_code": i18n.N_("a code uses only a-z, 0-9 and '-' (e.g. dai-thang)"),
    "duplicate_code": i18n.N_("this code appears earlier in the file"),
    "not_integer": i18n.N_("not a whole number"),
    "bad_appendix": i18n.N_("the appendix is 2 or 3"),
    "bad_kind": i18n.N_(
        "the kind is operating_complete, operating_incomplete or founded_2018_2020"
    ),
    "bad_investor_type": i18n.N_("the investor type is district_board or company"),
    "bad_percent": i18n.N_("not a percentage from 0 to 100 (e.g. 68,45)"),
    "bad_month": i18n.N_("not a month (e.g. 2021-03 or 3/2021)"),
    "bad_quarter": i18n.N_("not a quarter (e.g. 2021-Q4 or IV/2021)"),
}


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        _ = i18n.gettext_for("vi")
        click.echo(
            _("Wrong setting {variable}: {problem}").format(
                variable=exc.variable, problem=exc.problem
            ),
            err=True,
        )
        sys.exit(2)


def _with_app(work: Callable[[App], Awaitable[T]], *, migrate: bool = True) -> T:
    settings = _settings()

    async def main() -> T:
        async with open_app(settings) as app:
            if migrate:
                await prepare(app)
            return await work(app)

    return asyncio.run(main())


def _(message: str) -> str:
    return i18n.gettext_for(_settings().default_locale)(message)


@click.group()
def main() -> None:
    """Field-reporting bot for Hanoi's industrial clusters (Kế hoạch 68/KH-UBND)."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations; load the plan's registry into an empty database."""

    async def work(app: App) -> None:
        counts = await prepare(app)
        click.echo(
            _("Database at revision {revision}.").format(
                revision=await current_revision(app.engine)
            )
        )
        if counts:
            click.echo(
                _("Registry loaded: {clusters} clusters, {steps} steps, {tasks} tasks.").format(
                    clusters=counts.clusters, steps=counts.steps, tasks=counts.tasks
                )
            )

    _with_app(work, migrate=False)


@main.command()
def demo() -> None:
    """Chat with the bot in this terminal (no token needed)."""
    from bot.channels import terminal

    async def work(app: App) -> None:
        await terminal.chat(app.sessions, app.settings.default_locale)

    _with_app(work)


@main.command()
def run() -> None:
    """Run the bot: on Telegram when TELEGRAM_BOT_TOKEN is set, else in this terminal."""
    settings = _settings()
    if settings.telegram_bot_token is None:
        click.echo(_("No TELEGRAM_BOT_TOKEN: starting the terminal chat."), err=True)
        demo.main(args=[], standalone_mode=False)
        return
    click.echo(_("The Telegram channel is not available in this version yet."), err=True)
    sys.exit(2)


@main.group()
def registry() -> None:
    """The plan's registry embedded in the bot."""


@registry.command("load")
def registry_load() -> None:
    """Reload the embedded registry (updates by code; never duplicates)."""

    async def work(app: App) -> None:
        async with unit_of_work(app.sessions) as session:
            counts = await load_registry(session)
        click.echo(
            _("Registry loaded: {clusters} clusters, {steps} steps, {tasks} tasks.").format(
                clusters=counts.clusters, steps=counts.steps, tasks=counts.tasks
            )
        )

    _with_app(work)


@main.group()
def clusters() -> None:
    """The cluster registry."""


@clusters.command("list")
@click.option("--district", help="Only this district (accents optional).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def clusters_list(district: str | None, fmt: str) -> None:
    """List the clusters."""

    async def work(app: App) -> list[dict[str, str | int | float]]:
        async with app.sessions() as session:
            return [to_row(c) for c in await all_clusters(session, district)]

    rows = _with_app(work)
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        _print_table(rows)
        click.echo(_("{count} clusters.").format(count=len(rows)))


def _print_table(rows: list[dict[str, str | int | float]]) -> None:
    locale = _settings().default_locale
    shown = [
        (
            str(r["code"]),
            f"{r['appendix']}.{r['section'] or ''}.{r['number']}".replace("..", "."),
            str(r["name"]),
            str(r["district"]),
            str(r["investor"])[:40],
            i18n.percent(float(r["occupancy_rate"]), locale) if r["occupancy_rate"] != "" else "",
            i18n.month(str(r["planned_groundbreaking"])) if r["planned_groundbreaking"] else "",
        )
        for r in rows
    ]
    header = (
        _("Code"),
        _("No."),
        _("Name"),
        _("District"),
        _("Investor"),
        _("Occupancy"),
        _("Start"),
    )
    widths = [
        max(len(h), *(len(row[i]) for row in shown)) if shown else len(h)
        for i, h in enumerate(header)
    ]
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in shown:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


@clusters.command("search")
@click.argument("query", nargs=-1, required=True)
def clusters_search(query: tuple[str, ...]) -> None:
    """Find clusters by name (accents, case and word order do not matter)."""

    async def work(app: App) -> list[str]:
        async with app.sessions() as session:
            found = search(await all_clusters(session), " ".join(query))
        return [f"{m.cluster.code}\t{m.cluster.name}\t{m.score:.0f}" for m in found]

    lines = _with_app(work)
    if not lines:
        click.echo(
            _("No cluster matches “{query}”. Please check the name.").format(query=" ".join(query))
        )
        sys.exit(1)
    click.echo("\n".join(lines))


def describe(error: RowError) -> str:
    line = _("Line {line}, column {column}: {problem}").format(
        line=error.line, column=error.column, problem=_(PROBLEMS[error.problem])
    )
    return f"{line} ({error.value!r})" if error.value else line


@clusters.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def clusters_import(file: Path) -> None:
    """Import clusters from CSV or XLSX (same columns as export). All or nothing."""
    try:
        table = read_table(file)
        rows = parse_rows(table.header, table.rows)
    except TableFormatError as exc:
        click.echo(_("Cannot read {file}: {problem}").format(file=file, problem=exc), err=True)
        sys.exit(1)
    except ImportRejected as exc:
        for error in exc.errors:
            click.echo(describe(error), err=True)
        click.echo(
            _("Nothing was imported: {count} error(s).").format(count=len(exc.errors)), err=True
        )
        sys.exit(1)

    async def work(app: App) -> tuple[int, int, int]:
        async with unit_of_work(app.sessions) as session:
            result = await upsert_clusters(session, rows, actor="cli", source=str(file))
        return len(result.created), len(result.updated), len(result.unchanged)

    created, updated, unchanged = _with_app(work)
    click.echo(
        _("Imported: {created} new, {updated} updated, {unchanged} unchanged.").format(
            created=created, updated=updated, unchanged=unchanged
        )
    )


@clusters.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def clusters_export(file: Path) -> None:
    """Export clusters to CSV or XLSX, to edit in Excel and import again."""

    async def work(app: App) -> list[dict[str, str | int | float]]:
        async with app.sessions() as session:
            return [to_row(c) for c in await all_clusters(session)]

    rows = _with_app(work)
    try:
        write_table(file, COLUMNS, rows)
    except TableFormatError as exc:
        click.echo(_("Cannot write {file}: {problem}").format(file=file, problem=exc), err=True)
        sys.exit(1)
    click.echo(_("Exported {count} clusters to {file}.").format(count=len(rows), file=file))
