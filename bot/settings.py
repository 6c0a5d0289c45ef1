"""Settings from the environment and an optional .env file."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from domain.calendar import Calendar
from reminders.policy import Policy, parse_clock

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Annotated[Path, Field(alias="DATA_DIR")] = Path("data")
    database_url: Annotated[str, Field(alias="DATABASE_URL")] = ""
    timezone: Annotated[str, Field(alias="TIMEZONE")] = "Asia/Ho_Chi_Minh"
    telegram_bot_token: Annotated[SecretStr | None, Field(alias="TELEGRAM_BOT_TOKEN")] = None
    telegram_api_url: Annotated[str, Field(alias="TELEGRAM_API_URL")] = "https://api.telegram.org"
    default_locale: Annotated[Literal["vi", "en"], Field(alias="DEFAULT_LOCALE")] = "vi"
    telegram_bot_username: Annotated[str, Field(alias="TELEGRAM_BOT_USERNAME")] = ""
    webhook_url: Annotated[str, Field(alias="WEBHOOK_URL")] = ""
    webhook_secret: Annotated[SecretStr | None, Field(alias="WEBHOOK_SECRET")] = None
    webhook_listen: Annotated[str, Field(alias="WEBHOOK_LISTEN")] = "127.0.0.1"
    webhook_port: Annotated[int, Field(alias="WEBHOOK_PORT", ge=1, le=65535)] = 8443
    max_photos: Annotated[int, Field(alias="MAX_PHOTOS", ge=1, le=100)] = 10
    max_photo_mb: Annotated[int, Field(alias="MAX_PHOTO_MB", ge=1, le=50)] = 10
    # child processes that decode photos (store.images.Inspector); 0: a thread of the bot's own
    photo_processes: Annotated[int, Field(alias="PHOTO_PROCESSES", ge=0, le=8)] = 1
    invite_days: Annotated[int, Field(alias="INVITE_DAYS", ge=1, le=365)] = 14
    # a site photo taken more than this many days before its period, or farther than this from
    # its cluster's location, is flagged to the sender and the reviewer (store.integrity)
    photo_max_age_days: Annotated[int, Field(alias="PHOTO_MAX_AGE_DAYS", ge=1, le=3650)] = 60
    photo_max_distance_km: Annotated[float, Field(alias="PHOTO_MAX_DISTANCE_KM", gt=0, le=1000)] = 3
    # the reporting calendar (Kế hoạch 68, section IV) and the reminder policy
    report_day: Annotated[int, Field(alias="REPORT_DAY", ge=2, le=28)] = 25
    report_day_december: Annotated[int, Field(alias="REPORT_DAY_DECEMBER", ge=2, le=28)] = 20
    office_day: Annotated[int, Field(alias="OFFICE_DAY", ge=2, le=28)] = 28
    office_day_december: Annotated[int, Field(alias="OFFICE_DAY_DECEMBER", ge=2, le=28)] = 25
    remind_days: Annotated[str, Field(alias="REMIND_DAYS")] = "5,2,1"
    office_remind_days: Annotated[str, Field(alias="OFFICE_REMIND_DAYS")] = "2,1"
    remind_at: Annotated[str, Field(alias="REMIND_AT")] = "08:00"
    quiet_hours: Annotated[str, Field(alias="QUIET_HOURS")] = "21:00-07:00"
    reminder_tick_seconds: Annotated[int, Field(alias="REMINDER_TICK_SECONDS", ge=5, le=3600)] = 60
    # demos and end-to-end tests only: the bot's clock starts at this moment and runs on
    clock_start: Annotated[datetime | None, Field(alias="CLOCK_START")] = None
    # Zalo Official Account
    zalo_app_id: Annotated[str, Field(alias="ZALO_APP_ID")] = ""
    zalo_app_secret: Annotated[SecretStr | None, Field(alias="ZALO_APP_SECRET")] = None
    zalo_oa_secret_key: Annotated[SecretStr | None, Field(alias="ZALO_OA_SECRET_KEY")] = None
    zalo_oa_access_token: Annotated[SecretStr | None, Field(alias="ZALO_OA_ACCESS_TOKEN")] = None
    zalo_oa_refresh_token: Annotated[SecretStr | None, Field(alias="ZALO_OA_REFRESH_TOKEN")] = None
    zalo_api_url: Annotated[str, Field(alias="ZALO_API_URL")] = "https://openapi.zalo.me"
    zalo_oauth_url: Annotated[str, Field(alias="ZALO_OAUTH_URL")] = "https://oauth.zaloapp.com"
    zalo_zns_url: Annotated[str, Field(alias="ZALO_ZNS_URL")] = "https://business.openapi.zalo.me"
    zalo_webhook_path: Annotated[str, Field(alias="ZALO_WEBHOOK_PATH")] = "/zalo/webhook"
    zalo_webhook_listen: Annotated[str, Field(alias="ZALO_WEBHOOK_LISTEN")] = "127.0.0.1"
    zalo_webhook_port: Annotated[int, Field(alias="ZALO_WEBHOOK_PORT", ge=1, le=65535)] = 8444
    # consultation messages reach a person for 7 days after their last message (ZALO.md §2)
    zalo_window_hours: Annotated[int, Field(alias="ZALO_WINDOW_HOURS", ge=1, le=168)] = 168
    zalo_zns_template_id: Annotated[str, Field(alias="ZALO_ZNS_TEMPLATE_ID")] = ""
    zalo_oa_name: Annotated[str, Field(alias="ZALO_OA_NAME", max_length=100)] = (
        "Sở Công Thương Hà Nội"
    )
    # the banner of Zalo's phone-number form; this one is from Zalo's PHP SDK README
    zalo_info_image_url: Annotated[str, Field(alias="ZALO_INFO_IMAGE_URL")] = (
        "https://stc-oa-chat-adm.zdn.vn/images/request-info-banner.png"
    )
    # the bot's own web server (download links, /healthz): the Zalo webhook's, or its own
    public_url: Annotated[str, Field(alias="PUBLIC_URL")] = ""
    link_secret: Annotated[SecretStr | None, Field(alias="LINK_SECRET")] = None
    web_listen: Annotated[str, Field(alias="WEB_LISTEN")] = "127.0.0.1"
    web_port: Annotated[int | None, Field(alias="WEB_PORT", ge=1, le=65535)] = None
    # operations: logs (text or one JSON object a line) and how long start-up retries
    log_format: Annotated[Literal["text", "json"], Field(alias="LOG_FORMAT")] = "text"
    log_level: Annotated[
        str, Field(alias="LOG_LEVEL", pattern=r"(?i)^(debug|info|warning|error)$")
    ] = "INFO"
    startup_timeout: Annotated[float, Field(alias="STARTUP_TIMEOUT", ge=0, le=86400)] = 300

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("remind_days", "office_remind_days")
    @classmethod
    def _days(cls, value: str) -> str:
        try:
            days = [int(d) for d in value.split(",") if d.strip()]
        except ValueError as exc:
            raise ValueError(f"expected days before the deadline, like 5,2,1: {value!r}") from exc
        if not days or any(d < 1 or d > 20 for d in days):
            raise ValueError(f"expected days from 1 to 20, like 5,2,1: {value!r}")
        return ",".join(str(d) for d in sorted(set(days), reverse=True))

    @field_validator("remind_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        parse_clock(value)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        if value.strip():
            start, _sep, end = value.partition("-")
            parse_clock(start)
            parse_clock(end)
        return value

    @field_validator("webhook_url")
    @classmethod
    def _https_webhook(cls, value: str) -> str:
        if value and (urlsplit(value).scheme != "https" or not urlsplit(value).netloc):
            raise ValueError(f"Telegram webhooks need an https URL: {value!r}")
        return value

    @field_validator("telegram_api_url", "zalo_api_url", "zalo_oauth_url", "zalo_zns_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.rstrip("/")

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        if value is not None and ":" not in value.get_secret_value():
            raise ValueError("expected <bot id>:<secret> as given by @BotFather")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.strip():
            return ""
        try:
            url = make_url(value.strip())
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {value!r}") from exc
        driver = _DRIVERS.get(url.drivername)
        if driver is None:
            raise ValueError(f"unsupported database {url.drivername!r} (SQLite or PostgreSQL)")
        return url.set(drivername=driver).render_as_string(hide_password=False)

    @field_validator("zalo_webhook_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"a URL path starting with /: {value!r}")
        return value

    @model_validator(mode="after")
    def _zalo_complete(self) -> Settings:
        given = {
            "ZALO_APP_ID": bool(self.zalo_app_id),
            "ZALO_APP_SECRET": self.zalo_app_secret is not None,
            "ZALO_OA_SECRET_KEY": self.zalo_oa_secret_key is not None,
            "ZALO_OA_REFRESH_TOKEN": self.zalo_oa_refresh_token is not None,
        }
        if any(given.values()) and not all(given.values()):
            missing = next(name for name, ok in given.items() if not ok)
            raise ValueError(f"{missing} is needed with the other ZALO_ settings")
        return self

    @model_validator(mode="after")
    def _links_complete(self) -> Settings:
        if self.public_url:
            if not self.public_url.startswith(("https://", "http://")):
                raise ValueError(f"PUBLIC_URL must start with https:// ({self.public_url!r})")
            secret = self.link_secret.get_secret_value() if self.link_secret else ""
            if len(secret.strip()) < 16:
                raise ValueError("LINK_SECRET (16 characters or more) is needed with PUBLIC_URL")
        return self

    @field_validator("clock_start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("CLOCK_START needs a time zone, e.g. 2021-06-10T09:00+07:00")
        return value

    @property
    def zalo_enabled(self) -> bool:
        return bool(self.zalo_app_id)

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            path = (self.data_dir / "ccn.db").resolve()
            self.database_url = f"sqlite+aiosqlite:///{path}"
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def calendar(self) -> Calendar:
        return Calendar(
            self.zone,
            reporter_day=self.report_day,
            reporter_day_december=self.report_day_december,
            office_day=self.office_day,
            office_day_december=self.office_day_december,
        )

    def policy(self) -> Policy:
        start, _sep, end = self.quiet_hours.partition("-")
        return Policy(
            remind_days=tuple(int(d) for d in self.remind_days.split(",")),
            office_remind_days=tuple(int(d) for d in self.office_remind_days.split(",")),
            remind_at=parse_clock(self.remind_at),
            quiet_start=parse_clock(start) if self.quiet_hours.strip() else None,
            quiet_end=parse_clock(end) if self.quiet_hours.strip() else None,
        )

    def telegram_base_url(self) -> str:
        """Root for Bot API methods: `<TELEGRAM_API_URL>/bot` (the token follows)."""
        return f"{self.telegram_api_url}/bot"

    def telegram_file_url(self) -> str:
        return f"{self.telegram_api_url}/file/bot"


class SettingsError(Exception):
    """A wrong setting, with the environment variable that holds it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        named = re.search(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", message)
        variable = str(error["loc"][0]) if error["loc"] else named.group(0) if named else "?"
        raise SettingsError(variable, message) from exc
