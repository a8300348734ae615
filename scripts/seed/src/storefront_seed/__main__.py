"""``python -m storefront_seed``: compose's one-shot seed of the local profile.

Seeds what ``make run`` seeds, idempotently: the admin linked to the Telegram stand-in's
chat (``SEED_ADMIN_PHONE``, ``SEED_ADMIN_CHAT_ID``) straight into auth's database, then
``SEED_PRODUCTS`` products with stock through inventory's admin API (so their events
reach catalog's search index as in production). It reads only what it needs:
``AUTH_DATABASE_URL``, ``AUTH_JWT_SIGNING_KEY`` and auth's field-encryption keys
(``AUTH_ENCRYPTION_KEYS``, ``AUTH_ENCRYPTION_KEY_ID``, ``AUTH_BLIND_INDEX_KEY``: it acts
as auth's admin tool),
``SEED_API_URL`` (inventory's base URL) and the token issuer and audience.
"""

import os
import sys

from storefront_seed.products import admin_token, seed_products
from storefront_seed.users import seed_admin


def main() -> int:
    """Seed the admin, then the catalogue; a failure exits non-zero with the reason."""
    env = os.environ
    missing = [
        name
        for name in (
            "AUTH_DATABASE_URL",
            "AUTH_JWT_SIGNING_KEY",
            # The admin's phone and chat are stored encrypted with auth's own keys.
            "AUTH_ENCRYPTION_KEYS",
            "AUTH_BLIND_INDEX_KEY",
            "SEED_API_URL",
        )
        if not env.get(name)
    ]
    if missing:
        print(f"seed: set {', '.join(missing)}", file=sys.stderr)
        return 2
    admin = seed_admin(env["AUTH_DATABASE_URL"])
    verb = "created" if admin["created"] else "already there"
    print(f"admin: {admin['phone']} ({verb}), linked to Telegram chat {admin['telegram_chat_id']}")
    token = admin_token(
        env["AUTH_JWT_SIGNING_KEY"],
        issuer=env.get("STOREFRONT_JWT_ISSUER") or "storefront-auth",
        audience=env.get("STOREFRONT_JWT_AUDIENCE") or "storefront",
    )
    seed_products(env["SEED_API_URL"], token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
