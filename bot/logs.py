"""Logs: plain text or one JSON object a line (LOG_FORMAT), at LOG_LEVEL, never with a secret.

What people type is never logged at INFO or above (only at DEBUG, where a library may show
whole updates): the bot's own log lines name chats, people and reports by number, not by what
was said. Every line goes through `Redact`, which replaces the configured secrets (the bot
token, webhook and link secrets, Zalo secrets, the database password) and anything shaped like
a Telegram token or a URL's password with `[REDACTED]` — in the message, its arguments, extra
fields and tracebacks.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import unquote

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bot.settings import Settings

REDACTED = "[REDACTED]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A Telegram bot token (`<bot id>:<35 characters>`), and the password of a URL's user info.
_TOKEN_SHAPE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^@\s/]+)(?=@)")
# Libraries that log a request URL (with the bot token in it) or every job run at INFO.
QUIET_LIBRARIES = ("httpx", "httpcore", "apscheduler", "aiohttp.access")
# LogRecord's own attributes: everything else on a record is an `extra` field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings, and the parts of them that may show on their own."""
    found: list[str] = []
    values: list[SecretStr | None] = [
        settings.telegram_bot_token,
        settings.webhook_secret,
        settings.link_secret,
        settings.zalo_app_secret,
        settings.zalo_oa_secret_key,
        settings.zalo_oa_access_token,
        settings.zalo_oa_refresh_token,
    ]
    for value in values:
        if value is not None and value.get_secret_value().strip():
            found.append(value.get_secret_value())
    if settings.telegram_bot_token is not None:  # the part after the bot id is the secret one
        found.append(settings.telegram_bot_token.get_secret_value().partition(":")[2])
    try:
        password = make_url(settings.database_url).password
    except Exception:  # a URL the settings accepted; nothing to add if it does not parse
        password = None
    if password:
        found.extend({str(password), unquote(str(password))})
    # Short values would redact ordinary words; a real secret is longer than this.
    return sorted({s for s in found if len(s) >= 6}, key=len, reverse=True)


class Redact(logging.Filter):
    """Replaces secrets in everything a record will show. Added to the handler, so it sees the
    records of every logger, the libraries' included."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        if secret and secret not in self.secrets:
            self.secrets = sorted({*self.secrets, secret}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = _TOKEN_SHAPE.sub(REDACTED, text)
        return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show it as given rather than lose the line
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, the record's extra
    fields, and `exception` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def setup(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Send every log line to `stream` (stderr) as LOG_FORMAT says, at LOG_LEVEL, redacted.
    Replaces the root logger's handlers; returns the new one."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.addFilter(Redact(secrets_of(settings)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = settings.log_level.upper()
    root.setLevel(level)
    for name in QUIET_LIBRARIES:  # their INFO lines carry request URLs; DEBUG shows them
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    return handler


def add_secret(secret: str) -> None:
    """A secret learnt while running (a refreshed Zalo access token): redacted from now on by
    every handler set up here."""
    if len(secret) < 6:
        return
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, Redact):
                found.add(secret)
