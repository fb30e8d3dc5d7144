"""Opening the session database: location, permissions, WAL, migrations."""
from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from ..errors import TpwError
from ..paths import default_db_path
from . import schema

BUSY_TIMEOUT_MS = 15_000


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _create_private(path: Path) -> None:
    """Create the file (and its folder) readable by this user only, before SQLite does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def connect(path: str | os.PathLike | None = None) -> Database:
    """A new connection (one per thread), migrated to the current schema, in WAL mode.

    WAL lets the GUI read while the writer thread writes; the busy timeout
    turns another process's write lock into a short wait instead of an error.
    """
    path = Path(path) if path is not None else default_db_path()
    try:
        _create_private(path)
        db = Database(path)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: commits survive a process kill
        db.enable_wal()
        _migrate(db)
    except (OSError, sqlite3.DatabaseError) as exc:
        raise TpwError(f"{path}: cannot open the session database ({exc})") from None
    return db


def _migrate(db: Database) -> None:
    """Apply pending migrations under one write lock, so two processes opening
    a new file at once can't both try to create the same tables."""
    if not schema.migrations.pending(db):
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        schema.apply(db)
    except BaseException:
        db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")
