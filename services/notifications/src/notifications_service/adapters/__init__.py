"""Adapters to what notifications talks to besides PostgreSQL: Telegram, auth."""
