"""``python -m orders_service serve|migrate|rotate-keys``.

``rotate-keys`` re-encrypts every shipping address and client address with the active
encryption key (ORDERS_ENCRYPTION_KEY_ID); see docs/auth.md, "Rotating secrets".
"""

from orders_service import fields
from orders_service.settings import get_settings
from storefront_kit.cli import run_service_cli
from storefront_kit.key_rotation import EncryptedColumns, rotate_keys_command

#: Every encrypted column of the orders database (what ``rotate-keys`` re-encrypts).
ENCRYPTED = [
    EncryptedColumns(
        "customer_order",
        {
            "shipping_address": fields.ADDRESS_CONTEXT,
            "client_address": fields.CLIENT_ADDRESS_CONTEXT,
        },
    )
]


def main() -> None:
    """Command-line entry point."""
    run_service_cli(
        package="orders_service",
        get_settings=get_settings,
        migrations=True,
        commands=[rotate_keys_command(ENCRYPTED, install=fields.install)],
    )


if __name__ == "__main__":
    main()
