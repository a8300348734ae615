"""The notifications service. The Telegram bot: OTP delivery, receipts and order status messages."""
