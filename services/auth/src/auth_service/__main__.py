"""``python -m auth_service serve|migrate|create-admin``."""

from auth_service.cli import COMMANDS
from auth_service.settings import get_settings
from storefront_kit.cli import run_service_cli


def main() -> None:
    """Command-line entry point."""
    run_service_cli(
        package="auth_service", get_settings=get_settings, migrations=True, commands=COMMANDS
    )


if __name__ == "__main__":
    main()
