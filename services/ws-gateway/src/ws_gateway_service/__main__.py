"""``python -m ws_gateway_service serve``: run the service."""

from storefront_kit.cli import run_service_cli
from ws_gateway_service.settings import get_settings


def main() -> None:
    """Command-line entry point."""
    run_service_cli(package="ws_gateway_service", get_settings=get_settings, migrations=False)


if __name__ == "__main__":
    main()
