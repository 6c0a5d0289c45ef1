"""Operating the bot: backups and their restore, structured and redacted logs, start-up that
waits for Telegram, `run` without a terminal, and the deploy files."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from aiohttp import web
from sqlalchemy import select

from bot import logs
from bot.app import App
from bot.settings import Settings, load_settings
from handlers.context import Deps
from store.backup import BackupError, Manifest, backup, pg_invocation, restore
from store.db import make_engine
from store.models import Base
from testing.pg import free_port, new_database
from testing.standin_telegram import StandinBotAPI
from tests import inprocess
from tests.dialog import finish, play
from tests.test_dialogs import investor

REPO = Path(__file__).parent.parent
DEPLOY = REPO / "deploy"
TOKEN = "424242:OPS-SECRET-abcdefghijklmnopqrstuvwxyz0123"


DROP = ("DATABASE_URL", "TELEGRAM_BOT_TOKEN", "ZALO_APP_ID", "LOG_FORMAT", "LOG_LEVEL")


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    env.update({"DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def ccn_here(tmp_path: Path, *args: str, **env: str) -> inprocess.Done:
    """The command's work in this process, the same environment as `ccn` gives the process:
    for the tests about what a command does rather than about its process."""
    given: dict[str, str | None] = {name: None for name in DROP}
    given.update({"DATA_DIR": str(tmp_path / "data"), **env})
    return inprocess.ccn(tmp_path, given, *args)


def ccn(
    tmp_path: Path, *args: str, stdin: Any = subprocess.DEVNULL, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        env=environment(tmp_path, **env),
        cwd=tmp_path,
        timeout=180,
        check=False,
    )


# --- backup and restore ---------------------------------------------------------------------


async def reports_with_photos(deps: Deps) -> None:
    """Two investors: one sends two photos and reports twice (a correction), the other once."""
    chat = await investor(deps)
    await play(
        chat,
        [
            ("📷 red.jpg", "Đã lưu 1 ảnh"),
            ("📷 green.png", "Đã lưu 2 ảnh"),
            ("/baocao", "Đã thêm 2 ảnh"),
        ],
    )
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "Số tham chiếu")])
    await play(chat, [("/baocao", "Báo cáo tháng 06/2021")])
    await finish(chat)
    await play(chat, [("[Gửi báo cáo]", "bản điều chỉnh lần 2")])
    other = await investor(deps, code="binh-phu", chat_id="2002")
    await play(other, [("📷 blue.jpg", "Đã lưu 1 ảnh"), ("/baocao", "Đã thêm 1 ảnh")])
    await finish(other)
    await play(other, [("[Gửi báo cáo]", "Số tham chiếu")])


async def table_contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return {
                table.name: [
                    tuple(row)
                    for row in await conn.execute(
                        select(table).order_by(*table.primary_key.columns)
                    )
                ]
                for table in Base.metadata.sorted_tables
            }
    finally:
        await engine.dispose()


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@contextlib.asynccontextmanager
async def empty_database(kind: str, tmp_path: Path, base: str) -> AsyncIterator[str]:
    """A new empty database of the kind: a SQLite path, or a database on the test server."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'ccn.db'}"
        return
    async with new_database(base, prefix="r") as url:
        yield url


async def test_backup_and_restore_through_the_cli(
    app: App, deps: Deps, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    await reports_with_photos(deps)
    source = app.settings
    kind = "postgresql" if source.database_url.startswith("postgresql") else "sqlite"
    base = request.getfixturevalue("pg_base_url") if kind == "postgresql" else ""
    folder = tmp_path / "backups" / "2021-06-10"
    done = await asyncio.to_thread(
        ccn_here,
        tmp_path,
        "backup",
        str(folder),
        DATABASE_URL=source.database_url,
        DATA_DIR=str(source.data_dir),
    )
    assert done.returncode == 0, done.stderr
    assert f"Đã sao lưu vào {folder}: cơ sở dữ liệu {kind}" in done.stdout
    assert "3 báo cáo, 3 ảnh (6 tệp ảnh)" in done.stdout  # each photo and its thumbnail
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["database"] == kind and manifest["reports"] == 3 and manifest["photos"] == 3
    assert manifest["schema_revision"] and manifest["tables"]["report_photos"] == 3
    assert (folder / manifest["dump"]).stat().st_size == manifest["dump_bytes"]
    assert files_under(folder / "photos") == files_under(source.data_dir / "photos")

    target_dir = tmp_path / "restored"
    async with empty_database(kind, tmp_path, base) as target_url:
        env = {"DATABASE_URL": target_url, "DATA_DIR": str(target_dir)}
        done = await asyncio.to_thread(ccn_here, tmp_path, "restore", str(folder), **env)
        assert done.returncode == 0, done.stderr
        assert f"Đã khôi phục từ {folder} và đối chiếu với manifest" in done.stdout
        assert await table_contents(target_url) == await table_contents(source.database_url)
        assert files_under(target_dir / "photos") == files_under(source.data_dir / "photos")
        # the restored store works on: migrations find it current, new rows get new ids
        listed = await asyncio.to_thread(ccn_here, tmp_path, "people", "list", **env)
        assert listed.returncode == 0 and "#" in listed.stdout, listed.stderr

        again = await asyncio.to_thread(ccn_here, tmp_path, "restore", str(folder), **env)
        assert again.returncode == 1
        assert "Cơ sở dữ liệu không trống" in again.stderr and "--force" in again.stderr
        forced = await asyncio.to_thread(
            ccn_here, tmp_path, "restore", str(folder), "--force", **env
        )
        assert forced.returncode == 0, forced.stderr
        assert await table_contents(target_url) == await table_contents(source.database_url)


async def test_restore_refuses_what_it_must(app: App, deps: Deps, tmp_path: Path) -> None:
    await reports_with_photos(deps)
    url, data_dir = app.settings.database_url, app.settings.data_dir
    folder = tmp_path / "backup"
    manifest = await backup(url, data_dir, folder)
    with pytest.raises(BackupError) as refused:
        await backup(url, data_dir, folder)
    assert refused.value.code == "backup_folder_not_empty"
    assert Manifest.read(folder) == manifest

    with pytest.raises(BackupError) as refused:  # the live store is not empty
        await restore(folder, url, data_dir)
    assert refused.value.code == "database_not_empty"
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty' / 'ccn.db'}"
    if manifest.database == "sqlite":
        with pytest.raises(BackupError) as refused:  # photos already in DATA_DIR
            await restore(folder, empty, data_dir)
        assert refused.value.code == "photos_not_empty"
    else:
        with pytest.raises(BackupError) as refused:
            await restore(folder, empty, tmp_path / "empty")
        assert refused.value.code == "kind_mismatch"

    dump = folder / manifest.dump
    damaged = bytearray(dump.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    dump.write_bytes(bytes(damaged))
    with pytest.raises(BackupError) as refused:
        await restore(folder, url, data_dir, force=True)
    assert refused.value.code == "damaged"

    with pytest.raises(BackupError) as refused:
        await restore(tmp_path, url, data_dir)
    assert refused.value.code == "no_manifest"


def test_pg_tools_get_the_password_from_the_environment_only() -> None:
    url = "postgresql+asyncpg://ccn:s%40cret-pass@db.internal:5433/ccn?ssl=require"
    argv, env = pg_invocation(url, "/usr/bin/pg_dump", ["--format=custom"])
    assert env["PGPASSWORD"] == "s@cret-pass" and env["PGSSLMODE"] == "require"
    assert not any("cret" in part for part in argv)
    assert argv[:2] == ["/usr/bin/pg_dump", "--no-password"]
    assert argv[argv.index("--host") + 1] == "db.internal"
    assert argv[argv.index("--port") + 1] == "5433"
    assert argv[argv.index("--username") + 1] == "ccn"
    assert argv[argv.index("--dbname") + 1] == "ccn"


# --- logs -----------------------------------------------------------------------------------


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_logs_are_one_object_a_line_and_redacted() -> None:
    settings = load_settings(
        TELEGRAM_BOT_TOKEN=TOKEN,
        LINK_SECRET="link-secret-0123456789",
        DATABASE_URL="postgresql://ccn:db-password-42@127.0.0.1/ccn",
        LOG_FORMAT="json",
        LOG_LEVEL="info",
    )
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.setup(settings, stream)
        log = logging.getLogger("ccn.test")
        log.info("calling %s/bot%s/getMe", "https://api.telegram.org", TOKEN)
        log.warning("secret part alone: %s", TOKEN.partition(":")[2], extra={"chat": "42"})
        log.info("links signed with %s", "link-secret-0123456789")
        log.error("no database at postgresql://ccn:db-password-42@db/ccn")
        log.info("an unknown token 987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1 too")
        try:
            raise RuntimeError(f"getMe failed for {TOKEN}")
        except RuntimeError:
            log.exception("start-up failed")
        log.debug("not shown at INFO")
        logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot...")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    output = stream.getvalue()
    entries = json_lines(output)
    assert len(entries) == len(output.splitlines()) == 6
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert entries[0]["level"] == "INFO" and entries[0]["logger"] == "ccn.test"
    assert entries[1]["chat"] == "42"  # an extra field
    assert "RuntimeError" in entries[5]["exception"]
    for secret in (TOKEN, TOKEN.partition(":")[2], "link-secret-0123456789", "db-password-42"):
        assert secret not in output
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1" not in output  # shaped like a token
    assert output.count(logs.REDACTED) >= 6
    assert "not shown" not in output and "HTTP Request" not in output


def test_a_secret_learnt_while_running_is_redacted_too() -> None:
    """A Zalo access token refreshed at run time is not in the settings: it is registered
    with the filter when the bot learns it."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    fresh = "zalo-access-token-from-a-refresh-1234"
    try:
        logs.setup(load_settings(LOG_FORMAT="text"), stream)
        logs.add_secret(fresh)
        logging.getLogger("ccn.test").warning("Zalo answered with %s", fresh)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert fresh not in stream.getvalue() and logs.REDACTED in stream.getvalue()


LOGGING_CALLS = {"info", "warning", "error", "exception", "critical"}
CONTENT = {"text", "caption", "payload", "answer", "answers", "display_name", "values"}


def test_no_log_line_above_debug_carries_what_people_typed() -> None:
    """The bot's own log calls at INFO and above name chats and reports by number; none passes
    a message's text, caption, button payload or answers."""
    offenders = []
    for package in ("bot", "handlers", "reminders", "reports", "store"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LOGGING_CALLS
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("log", "logger", "logging")
                ):
                    continue
                for argument in node.args[1:]:
                    names = {
                        n.attr if isinstance(n, ast.Attribute) else n.id
                        for n in ast.walk(argument)
                        if isinstance(n, ast.Attribute | ast.Name)
                    }
                    if names & CONTENT:
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders


# --- start-up ---------------------------------------------------------------------------------


def test_run_gives_up_on_an_unreachable_telegram_with_one_line(tmp_path: Path) -> None:
    closed = free_port()
    done = ccn(
        tmp_path,
        "run",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=f"http://127.0.0.1:{closed}",
        STARTUP_TIMEOUT="3",
        LOG_FORMAT="json",
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("Telegram không trả lời trong 3 giây (")
    assert lines[-1].endswith("Bot dừng lại; hãy kiểm tra mạng và cấu hình rồi khởi động lại.")
    attempts = [e for e in json_lines(done.stderr) if e.get("service") == "Telegram"]
    assert len(attempts) >= 2 and all(e["level"] == "WARNING" for e in attempts)
    assert [e["attempt"] for e in attempts] == list(range(1, len(attempts) + 1))
    assert "Telegram unreachable (attempt 1: " in attempts[0]["message"]
    assert len(json_lines(done.stderr)) == len(lines) - 1  # every line but the last is JSON
    assert TOKEN.partition(":")[2] not in done.stderr


async def test_run_stops_at_once_when_telegram_refuses_the_token(tmp_path: Path) -> None:
    api = StandinBotAPI(token=TOKEN)
    await api.start()
    try:
        done = await asyncio.to_thread(
            ccn,
            tmp_path,
            "run",
            TELEGRAM_BOT_TOKEN="424242:WRONG-abcdefghijklmnopqrstuvwxyz0123",
            TELEGRAM_API_URL=api.root,
            STARTUP_TIMEOUT="120",
        )
    finally:
        await api.stop()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Telegram từ chối bot khi khởi động (InvalidToken")
    assert "unreachable" not in done.stderr  # no waiting: waiting will not change a refusal
    assert "WRONG-abcdefghijklmnopqrstuvwxyz0123" not in done.stderr


class StandinOnPort(StandinBotAPI):
    """The stand-in Bot API on a port chosen beforehand, so the bot can be pointed at it before
    it comes up."""

    def __init__(self, port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.port = port

    async def start(self) -> str:
        with mock.patch.object(web, "TCPSite", partial(_site_on, port=self.port)):
            return await super().start()


_TCPSite = web.TCPSite


def _site_on(runner: web.BaseRunner, host: str, _port: int, *, port: int) -> web.TCPSite:
    return _TCPSite(runner, host, port)


async def test_run_waits_for_telegram_to_come_up(tmp_path: Path) -> None:
    port = free_port()
    api = StandinOnPort(port, token=TOKEN, bot_username="ccn_ops_bot")
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env=environment(
            tmp_path,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=f"http://127.0.0.1:{port}",
            STARTUP_TIMEOUT="60",
        ),
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert bot.stdout is not None
    output: list[str] = []
    try:
        while not any("Telegram unreachable (attempt 2" in line for line in output):
            line = await asyncio.wait_for(bot.stdout.readline(), timeout=60)
            assert line, "\n".join(output)
            output.append(line.decode(errors="replace"))
        await api.start()
        for _ in range(300):
            if api.called("getUpdates"):
                break
            await asyncio.sleep(0.1)
        up = bool(api.called("getMe") and api.called("getUpdates"))
        if up:
            api.send_text(5550000, "xin chào")
            reply = await api.wait_for(
                5550000, lambda m: "5550000" in m.get("text", ""), timeout=20
            )
            assert reply  # a stranger is answered with their chat number: the bot is up
    finally:
        bot.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(bot.communicate(), timeout=30)
        await api.stop()
    text = "".join(output) + rest.decode(errors="replace")
    assert up, text[-3000:]
    assert bot.returncode == 0, text[-3000:]
    assert "Telegram reachable after" in text and "Traceback" not in text


def test_run_stops_while_waiting_when_told_to(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=environment(
            tmp_path,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}",
            STARTUP_TIMEOUT="120",
        ),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "Telegram unreachable (attempt 1" in line:
            break
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, "".join(seen) + rest
    assert "Traceback" not in rest


# --- run without a terminal ---------------------------------------------------------------------

NO_TERMINAL = (
    "Chưa cấu hình kênh nào (TELEGRAM_BOT_TOKEN hoặc ZALO_APP_ID) và không có terminal: "
    "không có gì để chạy."
)


def test_run_without_channel_or_terminal_exits_with_one_line(tmp_path: Path) -> None:
    done = ccn(tmp_path, "run")  # stdin is /dev/null, as under systemd or docker
    assert done.returncode == 2
    assert done.stderr.strip() == NO_TERMINAL
    closed = run_here(  # stdin closed altogether
        tmp_path, "sh", "-c", 'exec "$@" <&-', "sh", sys.executable, "-m", "bot", "run"
    )
    assert closed.returncode == 2 and closed.stderr.strip() == NO_TERMINAL
    assert not (tmp_path / "data" / "demo.db").exists()  # nothing was started


def test_run_reads_a_script_from_a_file_as_from_a_pipe(tmp_path: Path) -> None:
    script = tmp_path / "script.txt"
    script.write_text("/trogiup\n", encoding="utf-8")
    with script.open() as stdin:
        done = ccn(tmp_path, "run", stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert "/baocao — gửi báo cáo tháng" in done.stdout


# --- deploy files -------------------------------------------------------------------------------


def settings_names() -> set[str]:
    return {str(f.alias) for f in Settings.model_fields.values()}


def test_env_example_lists_every_setting() -> None:
    text = (DEPLOY / "ccn-bot.env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert settings_names() - listed == set()
    assert listed - settings_names() == set()
    active = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE))
    load_settings(**{k: v for k, v in active.items() if v})  # the uncommented values are valid


def test_compose_file() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    db, bot = services["db"], services["bot"]
    assert db["image"] == "postgres:16"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    build = bot["build"]
    dockerfile_path = DEPLOY / build["context"] / build["dockerfile"]
    assert dockerfile_path.resolve() == (DEPLOY / "Dockerfile").resolve()
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert bot["env_file"] == ["ccn-bot.env"]
    assert bot["environment"]["DATA_DIR"] == "/data"
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql://ccn:${POSTGRES_PASSWORD")
    assert "@db:5432/ccn" in bot["environment"]["DATABASE_URL"]
    assert set(bot["environment"]) <= settings_names()
    assert "ccn-data:/data" in bot["volumes"]
    assert {"pgdata", "ccn-data"} <= set(compose["volumes"])
    assert bot["healthcheck"]["test"] == ["CMD", "ccn-bot", "health"]
    assert all(p.startswith("127.0.0.1:") for p in bot["ports"])
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "postgresql-client-16" in dockerfile and "USER ccn-bot" in dockerfile
    assert 'CMD ["ccn-bot", "run"]' in dockerfile
    for copied in re.findall(r"^COPY (?!--)(\S+) ", dockerfile, flags=re.MULTILINE):
        assert (REPO / copied).exists(), copied


def test_compose_file_with_docker() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("DOCKER NOT AVAILABLE: compose.yaml and the Dockerfile were not built or run")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["?"])[0][:120]
        pytest.skip(
            f"DOCKER COMPOSE NOT AVAILABLE ({reason}): compose.yaml was parsed, not run by docker"
        )
    done = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "POSTGRES_PASSWORD": "x"},
        cwd=DEPLOY,
        check=False,
    )
    if "ccn-bot.env" in done.stderr:  # the env file is the operator's: use the example
        pytest.skip("deploy/ccn-bot.env is absent (copy of the example): not checked")
    assert done.returncode == 0, done.stderr


def test_ccn_health_asks_the_web_server(tmp_path: Path) -> None:
    async def serve() -> tuple[inprocess.Done, inprocess.Done]:
        app = web.Application()

        async def healthz(_request: web.Request) -> web.Response:
            return web.json_response({"status": "ok", "checks": {}})

        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            up = await asyncio.to_thread(ccn_here, tmp_path, "health", WEB_PORT=str(port))
        finally:
            await runner.cleanup()
        down = await asyncio.to_thread(ccn_here, tmp_path, "health", WEB_PORT=str(port))
        return up, down

    up, down = asyncio.run(serve())
    assert up.returncode == 0 and '"status": "ok"' in up.stdout, up.stderr
    assert down.returncode == 1 and "Bot không trả lời" in down.stderr
    unset = ccn_here(tmp_path, "health")
    assert unset.returncode == 2 and "WEB_PORT" in unset.stderr


def run_here(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """A command in the tests' environment, in `tmp_path`."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=environment(tmp_path),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_the_health_check_starts_light(tmp_path: Path) -> None:
    """Docker runs `ccn-bot health` every 30 s: it must not import the bot (about 2 s of CPU
    each time), only the settings."""
    probe = (
        "import sys; from bot import cli\n"
        "try:\n    cli.main(['health'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('bot.app', 'aiohttp', 'telegram', 'openpyxl', 'alembic', 'sqlalchemy.ext')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    done = run_here(tmp_path, sys.executable, "-c", probe)
    assert "WEB_PORT" in done.stderr  # it ran the command
    assert done.stdout.strip() == "[]", done.stdout


def test_the_running_bot_loads_no_file_library(tmp_path: Path) -> None:
    """The bot's process, with every handler and the reminders loaded and the app open, has
    not imported the libraries of the month's files (openpyxl, python-docx, matplotlib): the
    files are built in a child process (reports/offload.py), and with them each start of the
    bot took about 0.6 s more CPU and 45 MB more memory."""
    probe = (
        "import asyncio, sys\n"
        "import handlers.conversation, reminders.scheduler\n"
        "from bot.app import open_app, prepare\n"
        "from bot.settings import load_settings\n"
        "async def start() -> None:\n"
        "    async with open_app(load_settings()) as app:\n"
        "        await prepare(app)\n"
        "asyncio.run(start())\n"
        "heavy = ('openpyxl', 'docx', 'matplotlib')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(heavy)}))"
    )
    done = run_here(tmp_path, sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"], done.stdout


def test_systemd_unit() -> None:
    unit = (DEPLOY / "ccn-bot.service").read_text(encoding="utf-8")
    keys: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _sep, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    assert keys["Type"] == ["simple"] and keys["User"] == ["ccn-bot"]
    assert keys["EnvironmentFile"] == ["/etc/ccn-bot/ccn-bot.env"]
    assert keys["Restart"] == ["on-failure"] and keys["NoNewPrivileges"] == ["yes"]
    assert keys["ProtectSystem"] == ["strict"] and keys["ReadWritePaths"] == ["/var/lib/ccn-bot"]
    assert keys["ExecStart"][0].endswith("ccn-bot run")


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("SYSTEMD-ANALYZE NOT AVAILABLE: the unit was not verified")
    unit = (DEPLOY / "ccn-bot.service").read_text(encoding="utf-8")
    here = Path(sys.executable).parent / "ccn-bot"  # ExecStart must exist to verify
    copy = tmp_path / "ccn-bot.service"
    copy.write_text(unit.replace("/opt/ccn-bot/.venv/bin/ccn-bot", str(here)), encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "ccn-bot.service" not in done.stderr, done.stderr  # no warning about the unit
