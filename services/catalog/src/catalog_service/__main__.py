"""``python -m catalog_service serve|serve``: run the service."""

import argparse

import uvicorn

from catalog_service.settings import get_settings


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m catalog_service")
    parser.add_argument("command", choices=["serve"], nargs="?", default="serve")
    parser.parse_args()
    settings = get_settings()
    uvicorn.run(
        "catalog_service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )


if __name__ == "__main__":
    main()
