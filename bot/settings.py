"""Settings from the environment and an optional .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

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
    invite_days: Annotated[int, Field(alias="INVITE_DAYS", ge=1, le=365)] = 14

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("webhook_url")
    @classmethod
    def _https_webhook(cls, value: str) -> str:
        if value and (urlsplit(value).scheme != "https" or not urlsplit(value).netloc):
            raise ValueError(f"Telegram webhooks need an https URL: {value!r}")
        return value

    @field_validator("telegram_api_url")
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

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            path = (self.data_dir / "ccn.db").resolve()
            self.database_url = f"sqlite+aiosqlite:///{path}"
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

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
        variable = str(error["loc"][0]) if error["loc"] else "?"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(variable, message) from exc
