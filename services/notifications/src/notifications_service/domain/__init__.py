"""Pure rules of notifications: what the bot says (nothing of FastAPI, SQLAlchemy or HTTP)."""
