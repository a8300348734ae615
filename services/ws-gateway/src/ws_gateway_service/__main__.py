"""``python -m ws_gateway_service serve``: run the service."""

from storefront_kit.cli import run_service_cli
from ws_gateway_service.settings import get_settings


def main() -> None:
    """Command-line entry point."""
    run_service_cli(
        package="ws_gateway_service",
        get_settings=get_settings,
        migrations=False,
        # The sans-I/O websockets protocol runs no keepalive or reader task of its own
        # per socket (the app sends heartbeats itself): far less memory per connection.
        uvicorn_options={"ws": "websockets-sansio"},
    )


if __name__ == "__main__":
    main()
