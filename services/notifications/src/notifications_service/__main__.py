"""``python -m notifications_service serve|migrate``: run the service or apply its migrations."""

from notifications_service.settings import get_settings
from storefront_kit.cli import run_service_cli


def main() -> None:
    """Command-line entry point."""
    run_service_cli(package="notifications_service", get_settings=get_settings, migrations=True)


if __name__ == "__main__":
    main()
