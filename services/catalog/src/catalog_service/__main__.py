"""``python -m catalog_service serve|reindex``: run the service, or rebuild its index."""

from catalog_service.cli import COMMANDS
from catalog_service.settings import get_settings
from storefront_kit.cli import run_service_cli


def main() -> None:
    """Command-line entry point."""
    run_service_cli(
        package="catalog_service", get_settings=get_settings, migrations=False, commands=COMMANDS
    )


if __name__ == "__main__":
    main()
