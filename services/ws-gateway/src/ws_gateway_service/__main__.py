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
        # No permessage-deflate: browsers ask for it, and each socket would then keep
        # its own zlib state (a third of the memory of 10,000 sockets) and every
        # fan-out would compress once per socket; the messages are small JSON.
        uvicorn_options={"ws": "websockets-sansio", "ws_per_message_deflate": False},
    )


if __name__ == "__main__":
    main()
