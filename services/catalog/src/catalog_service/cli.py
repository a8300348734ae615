"""``python -m catalog_service reindex``: rebuild the index from inventory, with progress.

The command owns its clients (as a lifespan would): Elasticsearch and HTTP with the
longer ``reindex_timeout_s``, Redis for the lock and the catalogue version, and a
service token for the ``inventory`` audience signed with catalog's own key
(``CATALOG_SERVICE_TOKEN_KEY``; inventory lists its public key among its callers).
Search keeps answering from the old index until the alias moves.
"""

import argparse
import asyncio
import time

import httpx
from rich.console import Console
from rich.progress import TaskID, TextColumn

from catalog_service.clients.elasticsearch import create_elasticsearch
from catalog_service.service.reindex import (
    ReindexReport,
    ReindexRunning,
    estimated_total,
    reindex_from_inventory,
)
from catalog_service.settings import CatalogSettings
from storefront_kit.cli import ServiceCommand, progress_bar
from storefront_kit.http import create_http_client
from storefront_kit.redis import redis_from_settings
from storefront_kit.security import build_security

__all__ = ["COMMANDS", "run_reindex"]


async def run_reindex(settings: CatalogSettings, *, console: Console) -> ReindexReport:
    """Reindex from inventory, drawing a progress bar on ``console``."""
    settings = settings.model_copy(update={"elasticsearch_timeout_s": settings.reindex_timeout_s})
    es = create_elasticsearch(settings)
    redis = redis_from_settings(settings)
    http = create_http_client(timeout=settings.reindex_timeout_s)
    try:
        security = build_security(settings, http_client=http)
        total = await estimated_total(es, settings)
        with progress_bar(console, TextColumn("{task.fields[rate]} products/s")) as progress:
            task = progress.add_task("reindex", total=total, rate="-")
            started = time.monotonic()

            def advance(count: int, task: TaskID = task) -> None:
                state = progress.tasks[0]
                done = int(state.completed) + count
                rate = f"{done / max(time.monotonic() - started, 1e-3):,.0f}"
                # The first total is a guess (the current index's size): grow it when passed.
                total = done if state.total is not None and done > state.total else state.total
                progress.update(task, completed=done, total=total, rate=rate)

            report = await reindex_from_inventory(
                es=es,
                redis=redis,
                settings=settings,
                http=http,
                auth=security.auth_for("inventory"),
                on_page=advance,
            )
            progress.update(task, total=int(progress.tasks[0].completed))
        return report
    finally:
        await http.aclose()
        await es.close()
        await redis.aclose()


def _run(args: argparse.Namespace, settings: CatalogSettings) -> None:
    console = Console(stderr=True)
    try:
        report = asyncio.run(run_reindex(settings, console=console))
    except ReindexRunning:
        raise SystemExit("reindex: another reindex is running; try again when it ends") from None
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        hint = (
            " (check CATALOG_SERVICE_TOKEN_KEY and INVENTORY_SERVICE_TOKEN_CALLERS)"
            if status in (401, 403)
            else ""
        )
        raise SystemExit(f"reindex: inventory export answered {status}{hint}") from None
    except httpx.TransportError as exc:
        raise SystemExit(
            f"reindex: inventory unreachable at {settings.inventory_url}: {exc!r}"
        ) from None
    previous = ", ".join(report.previous) or "none"
    print(
        f"reindexed {report.indexed} products into {report.index} in {report.seconds:.1f} s; "
        f"alias {settings.index_alias} swapped; dropped: {previous}"
        + (
            f"; skipped {len(report.skipped)}: {', '.join(report.skipped[:10])}"
            if report.skipped
            else ""
        )
    )


COMMANDS = [
    ServiceCommand(
        name="reindex",
        help="rebuild the search index from inventory into a new index and swap the alias",
        run=_run,
    )
]
