"""What the service does, independent of FastAPI: OTP delivery, the bot, event notifications."""
