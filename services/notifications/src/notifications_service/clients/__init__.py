"""Outbound clients of notifications: the Telegram Bot API, auth, and the chat cache."""
