"""What tests and benchmarks share: stand-ins for the services the bot talks to (the Telegram
Bot API, Zalo's Official Account API), each refusing what the real service refuses, and a
throw-away PostgreSQL. Not part of the bot: nothing in bot/, handlers/, reminders/, reports/,
store/ or domain/ imports it (import-linter checks)."""
