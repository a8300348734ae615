"""Personal fields of the orders database, encrypted at rest (docs/design.md §7).

``customer_order.shipping_address`` (the recipient's name, address and phone) and
``customer_order.client_address`` (the IP the checkout came from, kept for the fraud
rules' velocity per client) hold envelope-encrypted tokens
(:mod:`storefront_kit.encryption`); nothing looks orders up by them, so they need no
blind index.
"""

from storefront_kit.encryption import BlindIndex, CipherSlot, FieldCipher

__all__ = ["ADDRESS_CONTEXT", "CLIENT_ADDRESS_CONTEXT", "FIELDS", "install"]

ADDRESS_CONTEXT = "orders.customer_order.shipping_address"
CLIENT_ADDRESS_CONTEXT = "orders.customer_order.client_address"


def _from_settings() -> tuple[FieldCipher, BlindIndex]:
    from orders_service.settings import get_settings

    return get_settings().field_crypto()


#: The keys the encrypted columns use: the app's and CLI's settings, else the environment's.
FIELDS = CipherSlot("orders", loader=_from_settings)


def install(cipher: FieldCipher, index: BlindIndex) -> None:
    """Use these keys for every encrypted column of the service."""
    FIELDS.install(cipher, index)
