"""Wiring: build the store, the inventory and the portal from the settings, and run them.

No domain logic lives here; this module only connects the packages in the order the data
flows (config -> store -> portal) and owns the lifetime of what it starts.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from tqdm import tqdm

import config as _config_package
from config.inventory.loader import load_inventory
from config.inventory.model import Inventory
from config.settings import Settings
from store.database import Database, StoreError, open_database
from store.inventory import ImportSummary, apply_inventory
from store.migrate import check_schema, migrate

log = logging.getLogger(__name__)

EXAMPLE_INVENTORY = Path(_config_package.__file__).resolve().parent / "example"

# Below this many objects a progress bar is more noise than help.
PROGRESS_BAR_MIN_OBJECTS = 500


@contextmanager
def open_store(settings: Settings, *, migrate: bool = True) -> Iterator[Database]:
    """Open the configured database (or start the embedded one) and bring its schema up to
    date (`migrate`), or at least make sure it is not newer than this code."""
    database = open_database(
        settings.database_url_value(),
        settings.data_dir,
        min_size=settings.store.pool_min_size,
        max_size=settings.store.pool_max_size,
    )
    try:
        if migrate:
            _migrate(database)
        yield database
    finally:
        database.close()


def _migrate(database: Database) -> None:
    applied = migrate(database.pool)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    check_schema(database.pool)


def load_inventory_files(paths: Sequence[Path]) -> Inventory:
    return load_inventory(list(paths))


def import_inventory(
    database: Database, inventory: Inventory, paths: Sequence[Path]
) -> ImportSummary:
    """Apply an inventory in one transaction, with a progress bar for large ones."""
    total = inventory.object_count()
    show_bar = total >= PROGRESS_BAR_MIN_OBJECTS and sys.stderr.isatty()
    with tqdm(total=total, unit="obj", desc="Importing", disable=not show_bar,
              file=sys.stderr) as bar, database.pool.connection() as conn:
        return apply_inventory(conn, inventory, files=[str(p) for p in paths],
                               progress=bar.update)


def run_portal(
    settings: Settings,
    *,
    host: str,
    port: int,
    inventory_paths: Sequence[Path] = (),
    demo: bool = False,
) -> None:
    """Serve the portal until interrupted (Ctrl-C or SIGTERM), then stop what was started."""
    from werkzeug.serving import make_server

    from portal.app import create_app

    inventory = load_inventory_files(inventory_paths) if inventory_paths else None
    with open_store(settings) as database:
        if inventory is not None:
            summary = import_inventory(database, inventory, inventory_paths)
            print(summary.report(), flush=True)
        app = create_app(settings, database)
        try:
            server = make_server(host, port, app, threaded=True)
        except OSError as error:
            raise StoreError(
                f"cannot listen on {host}:{port} ({error.strerror}): choose another port"
                " with --port or listen_port"
            ) from None
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

        previous = signal.signal(signal.SIGTERM, on_signal)
        where = (f"embedded PostgreSQL in {settings.data_dir}" if database.embedded
                 else "PostgreSQL")
        print(f"Keyline {'demo ' if demo else ''}is running on {where}.", flush=True)
        print(f"Open http://{host}:{server.server_port}/ (Ctrl-C stops it)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.server_close()
            print("Keyline stopped.", flush=True)
