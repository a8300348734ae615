"""Pure logic of the auth service: phones, OTP codes, refresh tokens, roles (no I/O)."""
