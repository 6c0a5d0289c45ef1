"""What the bot says and does, messenger-neutral. Never imports a messenger library."""
