"""Re-encrypt a table's encrypted columns with the active key, in batches.

During a rotation the service runs with both keys in its ring (the new one active), so
every row stays readable while :func:`rotate_columns` rewrites the rows still sealed
with another key. Each batch is its own transaction and locks its rows
(``FOR UPDATE``), so a request changing a row at the same moment waits instead of
being overwritten. When :func:`count_stale` says 0, the old key can leave the ring.
"""

import argparse
import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import TaskID
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storefront_kit.cli import ServiceCommand, progress_bar
from storefront_kit.db import create_engine
from storefront_kit.encryption import BlindIndex, FieldCipher

__all__ = [
    "EncryptedColumns",
    "count_stale",
    "rotate_columns",
    "rotate_keys",
    "rotate_keys_command",
    "rotate_with_progress",
]


@dataclass(frozen=True)
class EncryptedColumns:
    """A table's encrypted columns: ``{column: context}``, and its primary key column."""

    table: str
    columns: Mapping[str, str]
    key: str = "id"


def _stale(spec: EncryptedColumns) -> str:
    # The header (version, length, key id) starts every token: compare it in SQL.
    return " OR ".join(
        f"({column} IS NOT NULL AND substring({column} from 1 for :n) <> :prefix)"
        for column in spec.columns
    )


async def count_stale(
    connection: AsyncConnection, spec: EncryptedColumns, cipher: FieldCipher
) -> int:
    """Rows holding a value sealed with another key than the active one."""
    prefix = cipher.active_prefix
    count = await connection.scalar(
        text(f"SELECT count(*) FROM {spec.table} WHERE {_stale(spec)}"),  # noqa: S608
        {"n": len(prefix), "prefix": prefix},
    )
    return int(count or 0)


async def rotate_columns(
    engine: AsyncEngine,
    spec: EncryptedColumns,
    cipher: FieldCipher,
    *,
    batch_size: int = 500,
    on_batch: Callable[[int], None] = lambda count: None,
) -> int:
    """Re-encrypt every stale row of ``spec`` with the active key; how many were."""
    prefix = cipher.active_prefix
    columns = ", ".join(spec.columns)
    select = text(
        f"SELECT {spec.key}, {columns} FROM {spec.table} WHERE {_stale(spec)}"  # noqa: S608
        f" ORDER BY {spec.key} LIMIT :limit FOR UPDATE"
    )
    assignments = ", ".join(f"{column} = :{column}" for column in spec.columns)
    update = text(f"UPDATE {spec.table} SET {assignments} WHERE {spec.key} = :_key")  # noqa: S608
    done = 0
    while True:
        async with engine.begin() as connection:
            rows = (
                await connection.execute(
                    select, {"n": len(prefix), "prefix": prefix, "limit": batch_size}
                )
            ).all()
            if not rows:
                return done
            changes = []
            for row in rows:
                values = {"_key": row[0]}
                for position, (column, context) in enumerate(spec.columns.items(), start=1):
                    token = row[position]
                    values[column] = (
                        None if token is None else cipher.reencrypt(bytes(token), context=context)
                    )
                changes.append(values)
            await connection.execute(update, changes)
        done += len(rows)
        on_batch(len(rows))


async def rotate_with_progress(
    engine: AsyncEngine,
    specs: list[EncryptedColumns],
    cipher: FieldCipher,
    *,
    batch_size: int,
    console: Console,
) -> dict[str, int]:
    """:func:`rotate_columns` for each table, drawing a progress bar; rows done per table."""
    done: dict[str, int] = {}
    with progress_bar(console) as progress:
        for spec in specs:
            async with engine.connect() as connection:
                total = await count_stale(connection, spec, cipher)
            task = progress.add_task(f"{spec.table} -> {cipher.ring.active_id}", total=total)

            def advance(count: int, task: TaskID = task) -> None:
                progress.advance(task, count)

            done[spec.table] = await rotate_columns(
                engine, spec, cipher, batch_size=batch_size, on_batch=advance
            )
    return done


async def rotate_keys(
    database_url: str,
    specs: Sequence[EncryptedColumns],
    cipher: FieldCipher,
    *,
    batch_size: int = 500,
    console: Console | None = None,
) -> tuple[dict[str, int], int]:
    """Rotate every table of ``specs``; (rows re-encrypted per table, rows still stale)."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0, application_name="rotate")
    try:
        done = await rotate_with_progress(
            engine,
            list(specs),
            cipher,
            batch_size=batch_size,
            console=console or Console(stderr=True),
        )
        async with engine.connect() as connection:
            left = sum([await count_stale(connection, spec, cipher) for spec in specs])
        return done, left
    finally:
        await engine.dispose()


def rotate_keys_command(
    specs: Sequence[EncryptedColumns],
    *,
    install: Callable[[FieldCipher, BlindIndex], None],
) -> ServiceCommand:
    """The ``rotate-keys`` command of a service whose settings hold field encryption keys."""

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=500, help="rows per transaction (default 500)"
        )

    def run(args: argparse.Namespace, settings: Any) -> None:
        cipher, index = settings.field_crypto()
        install(cipher, index)
        done: dict[str, int] = {}
        left = 0
        for url in settings.database_urls():  # every shard of a split service
            done_here, left_here = asyncio.run(
                rotate_keys(url, specs, cipher, batch_size=args.batch_size)
            )
            for table, count in done_here.items():
                done[table] = done.get(table, 0) + count
            left += left_here
        active = cipher.ring.active_id
        print(
            f"re-encrypted with key {active!r}: " + ", ".join(f"{t} {n}" for t, n in done.items())
        )
        if left:
            raise SystemExit(f"rotate-keys: {left} row(s) still use another key: run it again")
        others = sorted(cipher.ring.ids - {active})
        if others:
            print(f"no row uses {', '.join(others)} any more: it may leave the ring")

    return ServiceCommand(
        name="rotate-keys",
        help="re-encrypt personal fields with the active encryption key, in batches",
        run=run,
        add_arguments=arguments,
    )
