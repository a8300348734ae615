"""``python -m inventory_service serve|migrate``: run the service or apply its migrations."""

import argparse

import uvicorn

from inventory_service.settings import get_settings
from storefront_kit.migrations import upgrade


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m inventory_service")
    parser.add_argument("command", choices=["serve", "migrate"], nargs="?", default="serve")
    args = parser.parse_args()
    settings = get_settings()
    if args.command == "migrate":
        upgrade("inventory_service", settings.database_url)
        return
    uvicorn.run(
        "inventory_service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )


if __name__ == "__main__":
    main()
