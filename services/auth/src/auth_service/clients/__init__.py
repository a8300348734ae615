"""Outbound clients of auth: notifications (OTP delivery), the data holders of an export, and
the OTP store in Redis."""
