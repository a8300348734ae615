"""Adapters to what the auth service talks to besides PostgreSQL: Redis, notifications."""
