"""Entry points and wiring: settings, CLI, start-up, channel adapters."""
