"""``python -m notifications_service serve|migrate|rotate-keys``.

``rotate-keys`` re-encrypts every logged chat id with the active encryption key
(NOTIFICATIONS_ENCRYPTION_KEY_ID); see docs/auth.md, "Rotating secrets".
"""

from notifications_service import fields
from notifications_service.settings import get_settings
from storefront_kit.cli import run_service_cli
from storefront_kit.key_rotation import EncryptedColumns, rotate_keys_command

#: Every encrypted column of the notifications database (what ``rotate-keys`` re-encrypts).
ENCRYPTED = [EncryptedColumns("notification_log", {"chat_id": fields.CHAT_CONTEXT})]


def main() -> None:
    """Command-line entry point."""
    run_service_cli(
        package="notifications_service",
        get_settings=get_settings,
        migrations=True,
        commands=[rotate_keys_command(ENCRYPTED, install=fields.install)],
    )


if __name__ == "__main__":
    main()
