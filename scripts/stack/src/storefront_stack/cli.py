"""``python -m storefront_stack run``: the whole platform on this machine, Ctrl-C stops it."""

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from storefront_stack.platform import REPO_ROOT, Platform, options_from_environment
from storefront_stack.topology import SANDBOXES, SERVICES

__all__ = ["main"]

console = Console(highlight=False)
_COLORS = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta"]
_echo_lock = threading.Lock()
_prefixes: dict[str, str] = {}


def _echo(name: str, line: str) -> None:
    # Plain writes with a prefix styled once per name: rich's per-line markup parsing
    # cost more CPU than the services' own logging under load (and read "[...]" in
    # log lines as markup).
    prefix = _prefixes.get(name)
    if prefix is None:
        color = _COLORS[sum(map(ord, name)) % len(_COLORS)]
        with console.capture() as styled:
            console.print(f"[{color}]{name:>18}[/] | ", end="")
        prefix = _prefixes.setdefault(name, styled.get())
    with _echo_lock:
        sys.stdout.write(f"{prefix}{line}\n")
        sys.stdout.flush()


def _print_urls(platform: Platform) -> None:
    endpoints = platform.endpoints
    assert endpoints is not None
    gateway = endpoints.gateway_url
    table = Table(title="Storefront is running", show_lines=False)
    table.add_column("what")
    table.add_column("where")
    table.add_row("gateway (HTTP)", gateway)
    table.add_row(
        "gateway (HTTPS, self-signed)", f"https://localhost:{endpoints.gateway_https_port}"
    )
    for service in SERVICES:
        count = platform.replica_count(service.name)
        if count > 1:
            table.add_row(
                f"{service.name} replicas", ", ".join(endpoints.replica_urls(service.name))
            )
        table.add_row(
            f"{service.name} health / docs",
            f"{gateway}/health/{service.name}  {gateway}/docs/{service.name}",
        )
    for sandbox in SANDBOXES:
        table.add_row(f"sandbox {sandbox.name}", f"{gateway}/sandbox/{sandbox.name}/")
    table.add_row("admin dashboard", f"{gateway}/admin/")
    table.add_row("PostgreSQL", endpoints.postgres_url)
    table.add_row("Redis", endpoints.redis_url)
    table.add_row("Elasticsearch", endpoints.elasticsearch_url)
    table.add_row("logs and data", str(platform.state_dir))
    console.print(table)
    console.print("Press Ctrl-C to stop everything.")


def run(args: argparse.Namespace) -> int:
    """Start everything, print where it is, wait for Ctrl-C, stop everything."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    options = options_from_environment(
        Path(args.state_dir),
        log_to_files=args.quiet,
        tracing=True,  # to the OTLP stand-in, unless STOREFRONT_OTLP_ENDPOINT is exported
        echo=None if args.quiet else _echo,
    )
    platform = Platform(options)
    console.print("[bold]Starting PostgreSQL, Redis and Elasticsearch...[/]")
    try:
        platform.start_infrastructure()
        console.print("[bold]Applying migrations...[/]")
        platform.prepare_databases()
        console.print("[bold]Starting sandboxes and services...[/]")
        platform.start_applications()
        platform.start_gateway()
        platform.wait_ready()
        if args.seed:
            _seed(platform)
    except BaseException as exc:
        console.print(f"[red]Start-up failed: {exc!r}[/]")
        platform.stop()
        return 1
    _print_urls(platform)
    while not stop.wait(1.0):
        dead = [name for name, proc in platform.processes.items() if not proc.running]
        if dead:
            console.print(f"[red]{', '.join(dead)} exited; stopping.[/]")
            break
    console.print("[bold]Stopping...[/]")
    platform.stop()
    console.print("Stopped; nothing left running.")
    return 0


def _seed(platform: Platform) -> None:
    try:
        from storefront_seed import seed_platform
    except ImportError:
        return
    console.print("[bold]Seeding demo data...[/]")
    seed_platform(platform)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="storefront-stack")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="start the whole platform (make run)")
    run_parser.add_argument("--state-dir", default=str(REPO_ROOT / ".stack" / "run"))
    run_parser.add_argument("--no-seed", dest="seed", action="store_false")
    run_parser.add_argument("--quiet", action="store_true", help="logs to files, not the terminal")
    for name in ("render-gateway", "compose-config"):  # compose-config: the older name
        sub.add_parser(
            name,
            help="re-render the committed nginx configs (compose, Kubernetes) from the template",
        )
    keys_parser = sub.add_parser(
        "service-keys",
        help="write a fresh service-token key and callers map per service (Kubernetes Secrets)",
    )
    keys_parser.add_argument("--out", required=True, help="a directory outside the repository")
    args = parser.parse_args(argv)
    if args.command == "service-keys":
        from storefront_stack.keys import write_service_keys

        for path in write_service_keys(Path(args.out)):
            print(path)
        return 0
    if args.command == "run":
        return run(args)
    if args.command in ("render-gateway", "compose-config"):
        from storefront_stack.nginx import render_gateway_files

        for path in render_gateway_files():
            print(f"wrote {path.relative_to(REPO_ROOT)}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
