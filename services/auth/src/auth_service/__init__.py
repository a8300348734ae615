"""The auth service. Phone OTP login via Telegram, JWT access and refresh tokens, users, roles."""
