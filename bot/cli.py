"""The `ccn-bot` command line."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from bot.settings import Settings, SettingsError, load_settings
from domain import i18n
from domain.roles import Role

if TYPE_CHECKING:
    from bot.app import App, Startup
    from store import integrity
    from store.backup import BackupError
    from store.clusters import RowError
    from store.seed import SeedCounts

T = TypeVar("T")

PROBLEMS = {
    "missing_column": i18n.N_("the column is missing from the header"),
    "required": i18n.N_("a value is required"),
    "bad_code": i18n.N_(
        "a code uses only a-z, 0-9 and '-' (e.g. dai-thang), at most 40 characters"
    ),
    "duplicate_code": i18n.N_("this code appears earlier in the file"),
    "not_integer": i18n.N_("not a whole number"),
    "bad_appendix": i18n.N_("the appendix is 2 or 3"),
    "bad_kind": i18n.N_(
        "the kind is operating_complete, operating_incomplete, founded_2018_2020 or founded_2021"
    ),
    "bad_investor_type": i18n.N_("the investor type is district_board or company"),
    "bad_percent": i18n.N_("not a percentage from 0 to 100 (e.g. 68,45)"),
    "bad_month": i18n.N_("not a month (e.g. 2021-03 or 3/2021)"),
    "bad_quarter": i18n.N_("not a quarter (e.g. 2021-Q4 or IV/2021)"),
    "bad_location": i18n.N_("not a latitude,longitude in degrees (e.g. 21.0285,105.8542)"),
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
    from bot.app import open_app, prepare

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
    from bot.app import prepare
    from store.db import current_revision

    async def work(app: App) -> None:
        counts = await prepare(app)
        click.echo(
            _("Database at revision {revision}.").format(
                revision=await current_revision(app.engine)
            )
        )
        if counts:
            click.echo(_registry_loaded(counts))

    _with_app(work, migrate=False)


@main.command()
@click.option(
    "--as",
    "role",
    type=click.Choice([r.value for r in Role]),
    default=Role.INVESTOR.value,
    show_default=True,
    help="Which demo person to start as (switch later with /as).",
)
def demo(role: str) -> None:
    """Chat with the bot in this terminal, on the demo database DATA_DIR/demo.db (the registry
    and one demo person of each role). No token needed."""
    from bot.app import open_app, prepare
    from bot.channels import terminal
    from bot.demo import ensure_demo_people
    from store.db import unit_of_work

    settings = _settings()
    settings.database_url = f"sqlite+aiosqlite:///{(settings.data_dir / 'demo.db').resolve()}"

    async def main() -> None:
        async with open_app(settings) as app:
            await prepare(app)
            async with unit_of_work(app.sessions) as session:
                await ensure_demo_people(session)
            await terminal.chat(app.deps(), role=Role(role))

    asyncio.run(main())


def has_terminal() -> bool:
    """Someone (or a script) can type to the bot: stdin is a terminal, a pipe or a file. Under
    systemd or docker stdin is /dev/null (a character device that is not a terminal) or
    closed."""
    if sys.stdin is None:
        return False
    try:
        descriptor = sys.stdin.fileno()
        if os.isatty(descriptor):
            return True
        mode = os.fstat(descriptor).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _database_unreachable(error: BaseException) -> bool:
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(error, OSError | OperationalError | InterfaceError)


async def _wait_for_database(app: App, startup: Startup) -> None:
    """PostgreSQL may start after the bot (a reboot, `docker compose up`): wait for it."""
    from sqlalchemy import text

    async def ping() -> None:
        async with app.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    await startup.call("database", ping, retry_if=_database_unreachable)


def _serve_forever(work: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, on uvloop's event loop where it is installed (not on Windows): under the
    deadline rush the bot took about 8 % less CPU an update (benchmarks/deadline_rush.py)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(work)
        return
    uvloop.run(work)


@main.command()
def run() -> None:
    """Run the bot: on Telegram and/or Zalo as configured, else the terminal demo."""
    from bot import logs
    from bot.app import Startup, StartupFailed, StartupStopped, open_app, prepare, serve

    settings = _settings()
    if settings.telegram_bot_token is None and not settings.zalo_enabled:
        if not has_terminal():
            click.echo(
                _(
                    "No channel is configured (TELEGRAM_BOT_TOKEN or ZALO_APP_ID) and there is "
                    "no terminal: nothing to run."
                ),
                err=True,
            )
            sys.exit(2)
        click.echo(_("No TELEGRAM_BOT_TOKEN: starting the terminal chat."), err=True)
        demo.main(args=[], standalone_mode=False)
        return
    logs.setup(settings)

    async def main() -> None:
        async with open_app(settings) as app:
            await _wait_for_database(app, Startup(settings.startup_timeout))
            await prepare(app)
            await serve(app)

    try:
        _serve_forever(main())
    except StartupStopped:
        return
    except StartupFailed as exc:
        if exc.seconds is None:
            message = _("{service} refused the bot at start ({problem}). The bot stops.")
        else:
            message = _(
                "{service} did not answer for {seconds} seconds ({problem}). The bot stops; "
                "check the network and the settings, then start it again."
            )
        click.echo(
            logs.Redact(logs.secrets_of(settings)).redact(
                message.format(
                    service=exc.service,
                    seconds=f"{exc.seconds:g}" if exc.seconds is not None else "",
                    problem=exc.problem,
                )
            ),
            err=True,
        )
        sys.exit(1)


@main.command()
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=5.0, show_default=True)
def health(timeout: float) -> None:
    """Ask the running bot's /healthz (on WEB_PORT, or the Zalo webhook's port); exit 0 if
    healthy. For container health checks."""
    import urllib.error
    import urllib.request

    settings = _settings()
    if settings.zalo_enabled:
        listen, port = settings.zalo_webhook_listen, settings.zalo_webhook_port
    elif settings.web_port is not None:
        listen, port = settings.web_listen, settings.web_port
    else:
        click.echo(_("No web server is configured: set WEB_PORT."), err=True)
        sys.exit(2)
    host = "127.0.0.1" if listen in ("0.0.0.0", "", "::") else listen
    host = f"[{host}]" if ":" in host else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=timeout) as answer:
            click.echo(answer.read().decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        click.echo(exc.read().decode(errors="replace"), err=True)
        sys.exit(1)
    except (OSError, ValueError) as exc:
        click.echo(_("The bot does not answer: {problem}").format(problem=exc), err=True)
        sys.exit(1)


BACKUP_PROBLEMS = {
    "backup_folder_not_empty": i18n.N_("{folder} is not empty: back up into a new folder."),
    "no_manifest": i18n.N_("{folder} holds no backup (no manifest.json)."),
    "damaged": i18n.N_("The backup is damaged: {detail}."),
    "no_database_file": i18n.N_("No SQLite database file: {url}"),
    "kind_mismatch": i18n.N_(
        "The backup is of a {backup} database but DATABASE_URL is a {target} one."
    ),
    "database_not_empty": i18n.N_(
        "The database is not empty. Restore into an empty one, or add --force to overwrite it."
    ),
    "photos_not_empty": i18n.N_(
        "{folder} already holds photos. Restore into an empty DATA_DIR, or add --force."
    ),
    "tool_missing": i18n.N_(
        "{tool} not found: install the PostgreSQL client (apt-get install postgresql-client)."
    ),
    "tool_failed": i18n.N_("{tool} failed: {detail}"),
    "verify_failed": i18n.N_("The restored copy does not match the backup: {detail}"),
}


def _backup_problem(exc: BackupError) -> str:
    return _(BACKUP_PROBLEMS[exc.code]).format(**exc.params)


@main.command("backup")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def backup_command(folder: Path) -> None:
    """Back up the database and the photos into FOLDER (new or empty), with a manifest.
    Safe while the bot runs."""
    from bot import logs
    from store.backup import BackupError, backup

    settings = _settings()
    logs.setup(settings)
    try:
        manifest = asyncio.run(backup(settings.database_url, settings.data_dir, folder))
    except BackupError as exc:
        click.echo(_backup_problem(exc), err=True)
        sys.exit(1)
    click.echo(
        _(
            "Backup written to {folder}: {database} database at revision {revision}, "
            "{reports} reports, {photos} photos ({files} photo files)."
        ).format(
            folder=folder,
            database=manifest.database,
            revision=manifest.schema_revision,
            reports=manifest.reports,
            photos=manifest.photos,
            files=manifest.photo_files,
        )
    )


@main.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite a database or photos already there.")
def restore_command(folder: Path, force: bool) -> None:
    """Restore a backup into an empty database and DATA_DIR, then check it against the
    backup's manifest. Stop the bot first."""
    from bot import logs
    from store.backup import BackupError, restore

    settings = _settings()
    logs.setup(settings)
    try:
        manifest = asyncio.run(
            restore(folder, settings.database_url, settings.data_dir, force=force)
        )
    except BackupError as exc:
        click.echo(_backup_problem(exc), err=True)
        sys.exit(1)
    click.echo(
        _(
            "Restored from {folder} and checked against its manifest: revision {revision}, "
            "{reports} reports, {photos} photos."
        ).format(
            folder=folder,
            revision=manifest.schema_revision,
            reports=manifest.reports,
            photos=manifest.photos,
        )
    )


@main.command()
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--cluster", "clusters", multiple=True, help="Cluster code (investors), repeatable.")
@click.option("--district", help="District name (district People's Committees).")
@click.option("--org", "organisation", help="Organisation name (departments, investors).")
@click.option("--expires-days", type=click.IntRange(1, 365), default=None)
def invite(
    role: str,
    clusters: tuple[str, ...],
    district: str | None,
    organisation: str | None,
    expires_days: int | None,
) -> None:
    """Create a single-use invitation; prints its token (and its Telegram link if
    TELEGRAM_BOT_USERNAME is set)."""
    from bot.channels.telegram import deep_link
    from handlers.conversation import invite_problem
    from store.access import InviteError, create_invitation
    from store.db import unit_of_work
    from store.models import utcnow

    async def work(app: App) -> tuple[str, str]:
        async with unit_of_work(app.sessions) as session:
            invitation = await create_invitation(
                session,
                role=Role(role),
                now=utcnow(),
                clusters=list(clusters),
                district=district,
                organisation=organisation,
                expires_days=expires_days or app.settings.invite_days,
                created_by="cli",
            )
            return invitation.token, app.settings.telegram_bot_username

    try:
        token, username = _with_app(work)
    except InviteError as exc:
        click.echo(
            _("Cannot invite: {problem}").format(problem=_(invite_problem(exc)))
            + (f" ({exc.value})" if exc.value else ""),
            err=True,
        )
        sys.exit(1)
    click.echo(token)
    if username:  # Telegram's link; on Zalo the person types the code
        click.echo(deep_link(username, token))


@main.group()
def people() -> None:
    """People who may use the bot."""


@people.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include people whose access ended.")
def people_list(include_revoked: bool) -> None:
    """List people with their role, scope and chats."""
    from handlers.conversation import describe_person
    from store.access import list_people

    async def work(app: App) -> list[str]:
        async with app.sessions() as session:
            rows = await list_people(session, include_revoked=include_revoked)
            return [describe_person(p, app.settings.default_locale) for p in rows]

    lines = _with_app(work)
    click.echo("\n".join(lines) if lines else _("Nobody yet."))


@people.command("phone")
@click.argument("person_id", type=int)
@click.argument("phone")
def people_phone(person_id: int, phone: str) -> None:
    """Record a person's phone number (used for Zalo ZNS reminders), e.g. 84912345678."""
    from store.access import set_phone
    from store.contacts import normalise_phone
    from store.db import unit_of_work

    digits = normalise_phone(phone)
    if digits is None:
        click.echo(_("Not a phone number: {text}").format(text=phone), err=True)
        sys.exit(2)

    async def work(app: App) -> bool:
        async with unit_of_work(app.sessions) as session:
            return await set_phone(session, person_id, digits)

    if not _with_app(work):
        click.echo(_("No active person #{number}.").format(number=person_id), err=True)
        sys.exit(1)
    click.echo(digits)


@people.command("revoke")
@click.argument("person_id", type=int)
def people_revoke(person_id: int) -> None:
    """Withdraw a person's access (their reports stay)."""
    from store.access import revoke_person
    from store.db import unit_of_work
    from store.models import utcnow

    async def work(app: App) -> bool:
        async with unit_of_work(app.sessions) as session:
            return await revoke_person(session, person_id, actor="cli", now=utcnow()) is not None

    if not _with_app(work):
        click.echo(_("No active person #{number}.").format(number=person_id), err=True)
        sys.exit(1)
    click.echo(_("Access withdrawn for #{number}.").format(number=person_id))


def _moment(text: str | None, settings: Settings) -> datetime:
    """`2021-06-20T08:00+07:00`; without an offset the time is local (TIMEZONE)."""
    if not text:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        click.echo(
            _("Not a date and time: {text} (e.g. 2021-06-20T08:00+07:00)").format(text=text),
            err=True,
        )
        sys.exit(2)
    return moment if moment.tzinfo else moment.replace(tzinfo=settings.zone)


@main.group()
def reminders() -> None:
    """Reminders: see what would be sent at a moment, or send it (the ledger applies)."""


@reminders.command("preview")
@click.option("--at", "at", help="The moment, e.g. 2021-06-20T08:00+07:00 (default: now).")
def reminders_preview(at: str | None) -> None:
    """Print the reminders that would go out at that moment (nothing is sent or recorded)."""
    from reminders.sender import plan

    settings = _settings()
    moment = _moment(at, settings)

    async def work(app: App) -> list[str]:
        async with app.sessions() as session:
            outgoing, skipped = await plan(
                session,
                settings.calendar(),
                settings.policy(),
                moment,
                frozenset({"telegram", "zalo", "terminal"}),
            )
        lines = []
        for item in outgoing:
            lines.append(
                f"→ #{item.person_id} {item.channel}:{item.chat_id} [{item.kind} {item.period}]"
            )
            lines.extend(f"  {line}" for line in item.reply.text.splitlines())
            labels = [b.label for row in item.reply.buttons for b in row]
            if labels:
                lines.append("  " + " ".join(f"[{label}]" for label in labels))
        lines.append(
            _("{count} reminder(s) due; {skipped} already sent.").format(
                count=len(outgoing), skipped=skipped
            )
        )
        return lines

    click.echo("\n".join(_with_app(work)))


@reminders.command("send")
@click.option("--at", "at", help="The moment, e.g. 2021-06-20T08:00+07:00 (default: now).")
def reminders_send(at: str | None) -> None:
    """Send the reminders due at that moment through Telegram; each goes out at most once."""
    import gc

    # what start-up loads (modules, the bot's handlers) lives to the end: no collections over
    # it, neither while loading (0.2-0.4 s) nor during the run, where a full one would stall
    # the sends for tens of ms (bot.app.run freezes it too)
    gc.disable()
    from bot import logs
    from bot.channels import telegram
    from reminders.sender import tick

    settings = _settings()
    logs.setup(settings)
    moment = _moment(at, settings)
    token = settings.telegram_bot_token
    if token is None:
        click.echo(
            _("No TELEGRAM_BOT_TOKEN: nothing can be sent. Use: ccn-bot reminders preview"),
            err=True,
        )
        sys.exit(2)

    async def work(app: App) -> tuple[int, int, int, int]:
        application, _channel = telegram.build(
            app.deps(),
            token.get_secret_value(),
            settings.telegram_base_url(),
            settings.telegram_file_url(),
        )
        async with application:
            gc.freeze()
            gc.enable()
            result = await tick(
                app.sessions,
                settings.calendar(),
                settings.policy(),
                telegram.TelegramNotifier(application),
                moment,
            )
        return result.sent, result.blocked + result.unreachable, result.failed, result.skipped

    sent, blocked, failed, skipped = _with_app(work)
    click.echo(
        _("Sent {sent}; blocked {blocked}; failed {failed}; already sent {skipped}.").format(
            sent=sent, blocked=blocked, failed=failed, skipped=skipped
        )
    )
    gc.freeze()  # the process ends: no last collection over all of it (0.7 s on the way out)
    if failed:
        sys.exit(1)


@main.command("export")
@click.option("--period", required=True, help="The month, e.g. 2021-06 or 6/2021.")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The workbook (.xlsx); the report to sign is written beside it (.docx).",
)
@click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the summary chart to this PNG file.",
)
def export(period: str, out: Path, chart_path: Path | None) -> None:
    """Build the month's report to sign and its workbook (the files /tonghop sends)."""
    from domain.calendar import Period
    from domain.text import parse_month
    from reports import chart, upward
    from reports.summary import summarise

    try:
        month = Period.parse(parse_month(period))
    except ValueError:
        click.echo(_("Please give the month as month/year, e.g. /baocao 5/2021."), err=True)
        sys.exit(2)

    async def work(app: App) -> None:
        calendar = app.settings.calendar()
        async with app.sessions() as session:
            summary = await summarise(session, month, calendar)
            read = await upward.read(session, summary, calendar, datetime.now(UTC))
        files = upward.write(read, out.parent, app.settings.default_locale, stem=out.stem)
        click.echo(_("Report written: {file}").format(file=files.document))
        if chart_path is not None:
            chart.render(summary, chart_path, app.settings.default_locale)

    _with_app(work)
    click.echo(_("Workbook written: {file}").format(file=out))


def _registry_loaded(counts: SeedCounts) -> str:
    return _(
        "Registry loaded: {clusters} clusters, {steps} steps, {tasks} tasks, {duties} duties."
    ).format(clusters=counts.clusters, steps=counts.steps, tasks=counts.tasks, duties=counts.duties)


@main.group()
def registry() -> None:
    """The plan's registry embedded in the bot."""


@registry.command("load")
def registry_load() -> None:
    """Reload the embedded registry (updates by code; never duplicates)."""
    from store.db import unit_of_work
    from store.seed import load_registry

    async def work(app: App) -> None:
        async with unit_of_work(app.sessions) as session:
            counts = await load_registry(session)
        click.echo(_registry_loaded(counts))

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
    from store.clusters import COLUMNS, all_clusters, to_row

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
    from store.clusters import all_clusters, search

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


def _refuse(errors: list[RowError], described: Callable[[RowError], str]) -> NoReturn:
    """Every bad cell, by line and column, and nothing imported."""
    for error in errors:
        click.echo(described(error), err=True)
    click.echo(_("Nothing was imported: {count} error(s).").format(count=len(errors)), err=True)
    sys.exit(1)


def _read_import(
    file: Path,
    parse: Callable[[list[str], list[tuple[int, dict[str, str]]]], T],
    described: Callable[[RowError], str],
) -> T:
    """The table in FILE validated by `parse` (all or nothing), or the errors and exit 1."""
    from store.clusters import ImportRejected
    from store.tables import TableFormatError, read_table

    try:
        table = read_table(file)
        return parse(table.header, table.rows)
    except TableFormatError as exc:
        click.echo(_("Cannot read {file}: {problem}").format(file=file, problem=exc), err=True)
        sys.exit(1)
    except ImportRejected as exc:
        _refuse(exc.errors, described)


def _write_export(file: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """The rows written to FILE (CSV or XLSX), or why not and exit 1."""
    from store.tables import TableFormatError, write_table

    try:
        write_table(file, columns, rows)
    except TableFormatError as exc:
        click.echo(_("Cannot write {file}: {problem}").format(file=file, problem=exc), err=True)
        sys.exit(1)


@clusters.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def clusters_import(file: Path) -> None:
    """Import clusters from CSV or XLSX (same columns as export). All or nothing."""
    from store.clusters import parse_rows, upsert_clusters
    from store.db import unit_of_work

    rows = _read_import(file, parse_rows, describe)

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
    from store.clusters import COLUMNS, all_clusters, to_row

    async def work(app: App) -> list[dict[str, str | int | float]]:
        async with app.sessions() as session:
            return [to_row(c) for c in await all_clusters(session)]

    rows = _with_app(work)
    _write_export(file, COLUMNS, rows)
    click.echo(_("Exported {count} clusters to {file}.").format(count=len(rows), file=file))


@clusters.command("locate")
@click.argument("code", required=False)
@click.option("--confirm", is_flag=True, help="Confirm the location proposed for CODE.")
@click.option("--at", "at", help="Set CODE's location: latitude,longitude (e.g. 21.0285,105.8542).")
def clusters_locate(code: str | None, confirm: bool, at: str | None) -> None:
    """Clusters' locations (site photos far from them are flagged). Without CODE: the locations
    proposed for clusters that have none, from their first located reports."""
    from store import integrity
    from store.db import unit_of_work

    if code is None:

        async def proposed(app: App) -> list[integrity.Proposal]:
            async with app.sessions() as session:
                return await integrity.proposals(session)

        found = _with_app(proposed)
        for p in found:
            click.echo(
                f"{p.code}\t{p.latitude},{p.longitude}\t"
                + _("{name}; from {references}, within {metres} m").format(
                    name=p.name, references=", ".join(p.references), metres=p.spread_m
                )
            )
        click.echo(_("{count} proposal(s).").format(count=len(found)))
        return
    if confirm == (at is not None):
        click.echo(_("Give --confirm or --at latitude,longitude."), err=True)
        sys.exit(2)
    place: tuple[Decimal, Decimal] | None = None
    if at is not None:
        try:
            place = integrity.parse_location(at)
        except ValueError:
            problem = PROBLEMS["bad_location"]
            click.echo(_(problem) + f" ({at!r})", err=True)
            sys.exit(2)

    async def locate(app: App) -> str | None:
        async with unit_of_work(app.sessions) as session:
            where, source = place, "cli"
            if where is None:
                proposal = next(
                    (p for p in await integrity.proposals(session) if p.code == code), None
                )
                if proposal is None:
                    return None
                where = (proposal.latitude, proposal.longitude)
                source = "proposal:" + ",".join(proposal.references)
            try:
                await integrity.set_location(
                    session, code, where[0], where[1], actor="cli", source=source
                )
            except integrity.UnknownCluster:
                return None
            return f"{where[0]},{where[1]}"

    done = _with_app(locate)
    if done is None:
        click.echo(
            _("No cluster {code}, or no location proposed for it.").format(code=code), err=True
        )
        sys.exit(1)
    click.echo(_("Location of {code}: {where}.").format(code=code, where=done))


# --- plans by year ---------------------------------------------------------------------------

PLAN_PROBLEMS = {
    **PROBLEMS,
    "no_rows": i18n.N_("the file has no rows"),
    "bad_year": i18n.N_("not a year from 2000 to 2100"),
    "bad_date": i18n.N_("not a date (e.g. 17/3/2021 or 2021-03-17)"),
    "not_the_year": i18n.N_("the date is not in the plan's year"),
    "too_long": i18n.N_("too long"),
    "bad_target_code": i18n.N_(
        "a target code uses only a-z, 0-9 and '_' (e.g. groundbreakings_q2), up to 64 long"
    ),
    "duplicate_target": i18n.N_("this target appears earlier in the file for the same year"),
    "bad_unit": i18n.N_("the unit is cluster or percent"),
    "bad_number": i18n.N_("not a number (e.g. 43 or 12,5)"),
    "bad_range": i18n.N_("value_max is below value_min"),
    "bad_plan_period": i18n.N_(
        "the period is the plan's year or one of its quarters (e.g. 2026 or 2026-Q2)"
    ),
    "quarter_code": i18n.N_(
        "a target whose code ends in _q1 … _q4 is for that quarter of the plan's year "
        "(e.g. 2026-Q2)"
    ),
    "plan_differs": i18n.N_("differs from the same year's plan on an earlier line"),
}


def describe_plan_error(error: RowError) -> str:
    line = _("Line {line}, column {column}: {problem}").format(
        line=error.line, column=error.column, problem=_(PLAN_PROBLEMS[error.problem])
    )
    return f"{line} ({error.value!r})" if error.value else line


@main.group()
def plan() -> None:
    """Plans by year: number, date, targets and the quarterly groundbreaking plan. A period is
    compared only with the plan of its own year."""


@plan.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def plan_import(file: Path) -> None:
    """Add or replace the plans of the years in FILE (CSV or XLSX, the columns of export; one
    row per target). All or nothing; the other years stay as they are."""
    from store.db import unit_of_work
    from store.plans import parse_plans, upsert_plans

    specs = _read_import(file, parse_plans, describe_plan_error)

    async def work(app: App) -> tuple[list[int], list[int], list[int]]:
        async with unit_of_work(app.sessions) as session:
            result = await upsert_plans(session, specs, actor="cli", source=str(file))
        return result.created, result.updated, result.unchanged

    created, updated, unchanged = _with_app(work)

    def years(values: list[int]) -> str:
        return ", ".join(map(str, values)) or "—"

    click.echo(
        _("Plans imported: new {created}; updated {updated}; unchanged {unchanged}.").format(
            created=years(created), updated=years(updated), unchanged=years(unchanged)
        )
    )


@plan.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def plan_export(file: Path) -> None:
    """Export every year's plan to CSV or XLSX, to edit in Excel and import again."""
    from store.plans import COLUMNS as PLAN_COLUMNS
    from store.plans import all_plans, to_rows

    async def work(app: App) -> tuple[int, list[dict[str, str | int | float]]]:
        async with app.sessions() as session:
            plans = await all_plans(session)
            return len(plans), to_rows(plans)

    count, rows = _with_app(work)
    _write_export(file, PLAN_COLUMNS, rows)
    click.echo(
        _("Exported {count} plan(s), {targets} targets, to {file}.").format(
            count=count, targets=len(rows), file=file
        )
    )


# --- review of reports (handlers/review.py does the same by chat) ------------------------------


@main.group()
def review() -> None:
    """Review submitted reports: list those waiting, show one, accept it or send it back."""


@review.command("list")
@click.option("--period", help="Only this month, e.g. 2021-06 or 6/2021.")
def review_list(period: str | None) -> None:
    """The reports waiting for review (the latest versions not yet reviewed), oldest first."""
    from domain.calendar import Period
    from domain.text import parse_month
    from store import reviews

    month: str | None = None
    if period:
        try:
            month = str(Period.parse(parse_month(period)))
        except ValueError:
            click.echo(_("Not a month: {text}").format(text=period), err=True)
            sys.exit(2)

    async def work(app: App) -> list[str]:
        async with app.sessions() as session:
            found, total = await reviews.waiting(session, period=month, limit=1000)
            names = await reviews.titles(session, (r.subject for r in found))
        zone = app.settings.zone
        lines = [
            f"{r.reference}\t{Period.parse(r.period).label()}\t"
            f"{r.submitted_at.astimezone(zone):%d/%m/%Y %H:%M}\t{names[r.subject]}"
            for r in found
        ]
        lines.append(_("Reports waiting for review: {count}.").format(count=total))
        return lines

    click.echo("\n".join(_with_app(work)))


@review.command("show")
@click.argument("reference")
def review_show(reference: str) -> None:
    """A report's answers, numbered as `review changes --answers` takes them, and its review."""
    from domain.calendar import Period
    from handlers import review as chat_review
    from store import reviews

    locale = _settings().default_locale

    async def work(app: App) -> list[str] | None:
        async with app.sessions() as session:
            found = await reviews.report_by_reference(session, reference.strip())
            if found is None:
                return None
            title = (await reviews.titles(session, [found.subject]))[found.subject]
            decision = await reviews.latest_review(session, found.id)
            previous = await reviews.previous_version(session, found)
            newer = await reviews.newer_version(session, found)
        lines = [
            f"{found.reference} — {title}, {Period.parse(found.period).label()} "
            f"(v{found.version}) — {found.review_state}"
        ]
        if decision is not None:
            at = decision.at.astimezone(app.settings.zone)
            lines.append(f"{decision.state} — {decision.actor} — {at:%d/%m/%Y %H:%M}")
            if decision.comment:
                lines.append(f"“{decision.comment}”")
        if previous is not None:
            lines += chat_review.diff_lines(previous, found, locale)
        lines += [
            f"{n}. {chat_review.answer_line(q, found, locale)}"
            for n, q in enumerate(chat_review.answered(found), 1)
        ]
        if newer is not None:
            lines.append(
                _("A newer version has come: {reference}.").format(reference=newer.reference)
            )
        return lines

    lines = _with_app(work)
    if lines is None:
        click.echo(_("No report {reference}.").format(reference=reference), err=True)
        sys.exit(1)
    click.echo("\n".join(lines))


def _review_decision(reference: str, accepted: bool, answers: str = "", comment: str = "") -> None:
    from domain.answers import clean_text
    from domain.slots import Review, review_of
    from handlers import review as chat_review
    from store import reviews
    from store.db import unit_of_work
    from store.models import AuditLog, utcnow

    async def work(app: App) -> tuple[bool, str]:
        async with unit_of_work(app.sessions) as session:
            found = await reviews.report_by_reference(session, reference.strip())
            if found is None:
                return False, _("No report {reference}.").format(reference=reference)
            newer = await reviews.newer_version(session, found)
            if newer is not None:
                return False, _("A newer version has come: {reference}.").format(
                    reference=newer.reference
                )
            state = Review.ACCEPTED if accepted else Review.NEEDS_CHANGES
            if accepted and review_of(found.review_state) is Review.ACCEPTED:
                return True, _("Already accepted: {reference}.").format(reference=found.reference)
            questions = chat_review.answered(found)
            concerned: list[str] = []
            for word in answers.replace(",", " ").split():
                if word.isascii() and word.isdigit() and 1 <= int(word) <= len(questions):
                    concerned.append(questions[int(word) - 1].id)
                elif word in {q.id for q in questions}:
                    concerned.append(word)
                else:
                    return False, _("Not an answer of this report: {word}").format(word=word[:40])
            text = clean_text(comment).strip()[: chat_review.COMMENT_LIMIT]
            reviews.decide(
                session,
                found,
                state,
                comment=text,
                questions=list(dict.fromkeys(concerned)),
                person_id=None,
                actor="cli",
                channel="cli",
                now=utcnow(),
            )
            session.add(
                AuditLog(
                    actor="cli",
                    channel="cli",
                    action=f"review.{state.value}",
                    entity="report",
                    entity_id=found.reference,
                    detail={
                        "subject": str(found.subject),
                        "period": found.period,
                        "version": found.version,
                        "state": state.value,
                        "comment": text,
                        "questions": concerned,
                    },
                )
            )
            if accepted:
                return True, _("Accepted: {reference}. Thank you.").format(
                    reference=found.reference
                )
            return True, _(
                "Sent back for changes: {reference}. The sender is told at the next reminder run."
            ).format(reference=found.reference)

    done, message = _with_app(work)
    click.echo(message, err=not done)
    if not done:
        sys.exit(1)


@review.command("accept")
@click.argument("reference")
def review_accept(reference: str) -> None:
    """Mark a report accepted (e.g. BC-202106-00042)."""
    _review_decision(reference, True)


@review.command("changes")
@click.argument("reference")
@click.option("--comment", required=True, help="What to change, and why (the sender reads it).")
@click.option(
    "--answers",
    "answers",
    default="",
    help='The answers concerned: their numbers in `review show` (e.g. "2 5") or question ids.',
)
def review_changes(reference: str, comment: str, answers: str) -> None:
    """Send a report back for changes: its sender gets the comment and the answers concerned."""
    if not comment.strip():
        click.echo(
            _("Please write your comment for the sender: what to change, and why."), err=True
        )
        sys.exit(2)
    _review_decision(reference, False, answers, comment)


# --- organisations as data (store/orgs_table.py) ------------------------------------------------

# the clusters import's `commune` column (store/clusters.py) is refused with these words
PROBLEMS["bad_commune"] = i18n.N_(
    "not a commune's or ward's People's Committee (e.g. UBND xã Phú Xuyên, UBND phường Tây Mỗ)"
)
ORG_PROBLEMS = {
    **PLAN_PROBLEMS,
    "bad_org_kind": i18n.N_(
        "the kind is company, district_board, district_committee, commune_committee, "
        "ward_committee, department or other"
    ),
    "duplicate_org": i18n.N_("this organisation appears earlier in the file"),
    "bad_validity": i18n.N_("valid_to is before valid_from"),
    "merged_needs_end": i18n.N_("an organisation merged into another needs its last day"),
    "self_reference": i18n.N_("an organisation cannot refer to itself"),
    "unknown_org": i18n.N_("no organisation of this name, in the file or already stored"),
    "unknown_district": i18n.N_("no district of this name"),
    "kind_fixed": i18n.N_(
        "an organisation keeps its kind: enter what it became as a new organisation"
    ),
}


def describe_org_error(error: RowError) -> str:
    line = _("Line {line}, column {column}: {problem}").format(
        line=error.line, column=error.column, problem=_(ORG_PROBLEMS[error.problem])
    )
    return f"{line} ({error.value!r})" if error.value else line


@main.group()
def orgs() -> None:
    """Organisations as data: kinds, parents, when each existed and what it was merged into.
    Who owes a report follows them from the period after a change; past reports keep theirs."""


@orgs.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def orgs_import(file: Path) -> None:
    """Add organisations and update the others (CSV or XLSX, the columns of export). All or
    nothing; never deletes nor renames."""
    from store.clusters import ImportRejected
    from store.db import unit_of_work
    from store.orgs_table import parse_orgs, upsert_orgs

    specs = _read_import(file, parse_orgs, describe_org_error)

    async def work(app: App) -> tuple[int, int, int] | list[RowError]:
        try:
            async with unit_of_work(app.sessions) as session:
                result = await upsert_orgs(session, specs, actor="cli", source=str(file))
        except ImportRejected as exc:
            return exc.errors
        return len(result.created), len(result.updated), len(result.unchanged)

    done = _with_app(work)
    if isinstance(done, list):
        _refuse(done, describe_org_error)
    created, updated, unchanged = done
    click.echo(
        _(
            "Organisations imported: {created} new, {updated} updated, {unchanged} unchanged."
        ).format(created=created, updated=updated, unchanged=unchanged)
    )


@orgs.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def orgs_export(file: Path) -> None:
    """Export every organisation to CSV or XLSX, to edit in Excel and import again."""
    from store.orgs_table import COLUMNS as ORG_COLUMNS
    from store.orgs_table import all_organisations
    from store.orgs_table import to_row as org_row

    async def work(app: App) -> list[dict[str, str | int | float]]:
        async with app.sessions() as session:
            return [org_row(o) for o in await all_organisations(session)]

    rows = _with_app(work)
    _write_export(file, ORG_COLUMNS, rows)
    click.echo(_("Exported {count} organisations to {file}.").format(count=len(rows), file=file))


# --- photos -----------------------------------------------------------------------------------


@main.group()
def photos() -> None:
    """The stored site photos."""


@photos.command("rehash")
def photos_rehash() -> None:
    """Give the photos stored before photo checks came in (no perceptual hash) their hash, so
    a photo sent again later is recognised as used before. Safe to run again; a file missing
    or unreadable is named and left."""
    from store import integrity
    from store.db import unit_of_work
    from store.images import PhotoRejected, inspect

    async def work(app: App) -> tuple[int, list[str]]:
        data_dir = app.settings.data_dir
        done, left, after = 0, [], 0
        while True:
            async with unit_of_work(app.sessions) as session:
                batch = await integrity.unhashed(session, after)
                for photo in batch:
                    after = photo.id
                    try:
                        data = await asyncio.to_thread((data_dir / photo.path).read_bytes)
                        seen = await asyncio.to_thread(inspect, data, len(data))
                    except (OSError, PhotoRejected):
                        left.append(photo.path)
                        continue
                    await integrity.set_hash(session, photo, seen.phash)
                    done += 1
            if not batch:
                return done, left

    done, left = _with_app(work)
    for path in left:
        click.echo(_("Not hashed (missing or unreadable): {path}").format(path=path), err=True)
    click.echo(_("Photos hashed: {count}.").format(count=done))
