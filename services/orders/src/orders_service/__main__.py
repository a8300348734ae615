"""``python -m orders_service serve|migrate``: run the service or apply its migrations."""

from orders_service.settings import get_settings
from storefront_kit.cli import run_service_cli


def main() -> None:
    """Command-line entry point."""
    run_service_cli(package="orders_service", get_settings=get_settings, migrations=True)


if __name__ == "__main__":
    main()
