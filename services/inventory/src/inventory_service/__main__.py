"""``python -m inventory_service serve|migrate``: run the service or apply its migrations."""

from inventory_service.settings import get_settings
from storefront_kit.cli import run_service_cli


def main() -> None:
    """Command-line entry point."""
    run_service_cli(package="inventory_service", get_settings=get_settings, migrations=True)


if __name__ == "__main__":
    main()
