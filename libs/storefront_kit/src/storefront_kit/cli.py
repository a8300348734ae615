"""``python -m <service> serve|migrate``: one command line for every service."""

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from storefront_kit.migrations import upgrade
from storefront_kit.settings import ServiceSettings

__all__ = [
    "GRACEFUL_SHUTDOWN_S",
    "KEEP_ALIVE_TIMEOUT_S",
    "ServiceCommand",
    "progress_bar",
    "run_service_cli",
]

#: How long a service keeps an idle HTTP connection open. It must outlast every client's
#: own idle expiry (nginx's upstream ``keepalive_timeout`` 60 s, httpx's 5 s): when the
#: server closes first, a client that picks the connection up at that moment sends its
#: request into a closing socket and gets a reset (nginx answers 502 to a POST it may
#: not retry). uvicorn's default is 5 s, which races both.
KEEP_ALIVE_TIMEOUT_S = 75

#: How long a stopping service (SIGTERM: a scale-in, a rolling update) keeps working on
#: the requests it has already accepted; it accepts no new connection meanwhile. Below
#: every orchestrator's grace period before SIGKILL (compose ``stop_grace_period`` 30 s,
#: Kubernetes ``terminationGracePeriodSeconds`` 30 s).
GRACEFUL_SHUTDOWN_S = 20


def progress_bar(console: Console, *extra: ProgressColumn) -> Progress:
    """The progress bar a long command draws on ``console``: the task, its bar, done of
    total, the ``extra`` columns (say, a rate), the time elapsed; left on screen at the end."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@dataclass(frozen=True)
class ServiceCommand:
    """A service-specific command next to ``serve`` and ``migrate`` (e.g. ``create-admin``)."""

    name: str
    help: str
    run: Callable[[argparse.Namespace, Any], None]
    add_arguments: Callable[[argparse.ArgumentParser], None] = field(default=lambda parser: None)


def run_service_cli(
    *,
    package: str,
    get_settings: Callable[[], ServiceSettings],
    migrations: bool,
    commands: Sequence[ServiceCommand] = (),
    argv: Sequence[str] | None = None,
    uvicorn_options: Mapping[str, Any] | None = None,
) -> None:
    """Parse ``argv`` and run: ``serve`` (default) starts uvicorn on the service's app."""
    parser = argparse.ArgumentParser(prog=f"python -m {package}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the API with uvicorn (the default)")
    if migrations:
        sub.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
    for command in commands:
        command.add_arguments(sub.add_parser(command.name, help=command.help))
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command in (None, "serve"):
        uvicorn.run(
            f"{package}.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            access_log=False,  # the app logs each request itself, with its request id
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            proxy_headers=True,
            # Only the gateway may tell us the client's address (rate limits use it).
            forwarded_allow_ips=settings.platform.forwarded_allow_ips,
            **(uvicorn_options or {}),
        )
    elif args.command == "migrate":
        for url in settings.database_urls():  # type: ignore[attr-defined]
            upgrade(package, url)
    else:
        next(c for c in commands if c.name == args.command).run(args, settings)
