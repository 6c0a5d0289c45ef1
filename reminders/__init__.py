"""The reporting calendar and the reminders (issue: calendar and reminders)."""
