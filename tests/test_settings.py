from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings


def test_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'ccn.db'}"
    assert settings.timezone == "Asia/Ho_Chi_Minh"
    assert settings.default_locale == "vi"
    assert settings.telegram_bot_token is None
    assert settings.telegram_base_url() == "https://api.telegram.org/bot"
    assert settings.telegram_file_url() == "https://api.telegram.org/file/bot"


def test_environment_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TELEGRAM_API_URL=http://127.0.0.1:8081/\nDEFAULT_LOCALE=en\n")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example:5432/ccn")
    settings = load_settings()
    assert settings.database_url == "postgresql+asyncpg://u:p@db.example:5432/ccn"
    assert settings.telegram_base_url() == "http://127.0.0.1:8081/bot"
    assert settings.default_locale == "en"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TIMEZONE", "Asia/Hanoi_Typo"),
        ("DATABASE_URL", "mysql://x@y/z"),
        ("DATABASE_URL", "not a url"),
        ("TELEGRAM_API_URL", "ftp://example"),
        ("DEFAULT_LOCALE", "fr"),
        ("TELEGRAM_BOT_TOKEN", "no-colon"),
    ],
)
def test_wrong_value_names_the_variable(
    variable: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.variable == variable
