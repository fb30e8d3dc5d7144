"""Opening the session database: location, ownership, permissions, WAL, migrations.

tpw never modifies a file that isn't its own: before anything is written
(tables, WAL mode), the file is checked read-only. Ours means stamped with
tpw's ``application_id``, or an older tpw file (its migrations table names
the ``tpw`` set), or empty. A file stamped by a newer tpw (more migrations
than this version knows) is refused before any model loads, rather than
failing after a whole run.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import random
import sqlite3
import time
from pathlib import Path

from sqlite_utils import Database

from ..errors import TpwError
from ..paths import default_db_path
from ..peers.text import plain
from . import schema

BUSY_TIMEOUT_MS = 15_000
APPLICATION_ID = 0x54505744  # "TPWD": marks a file as tpw-desktop's session database


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class DatabaseReadOnly(TpwError):
    """The database can be read but not written (permissions, a read-only disk)."""


def describe_sqlite_error(exc: BaseException, path: Path | None = None) -> str:
    """A user's words for what went wrong with a write: disk full, read-only, I/O error."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary == sqlite3.SQLITE_FULL or getattr(exc, "errno", None) == errno.ENOSPC or "is full" in text:
        return "the disk is full"
    if primary == sqlite3.SQLITE_READONLY or "readonly" in text:
        return "the database is read-only"
    if primary == sqlite3.SQLITE_IOERR or "disk I/O error" in text:
        if path is not None and _free_bytes(path) < LOW_DISK_BYTES:
            return "the disk is full (a disk I/O error on write)"
        return "a disk I/O error"
    return text


LOW_DISK_BYTES = 1 << 20


def _free_bytes(path: Path) -> int:
    import shutil

    try:
        return shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
    except OSError:
        return LOW_DISK_BYTES


def _create_private(path: Path) -> None:
    """Create the file (and its folder) readable by this user only, before SQLite does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _inspect(path: Path) -> tuple[int, int, list[str], list[str], list[str]]:
    """application_id, user_version, tables, tpw migrations and other migration sets, read only."""
    conn = _open_read_only(path)
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        applied, other_sets = [], []
        if schema.migrations.migrations_table in tables:
            other_sets = [
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT migration_set FROM {schema.migrations.migrations_table} WHERE migration_set != ?",
                    [schema.migrations.name],
                )
            ]
            applied = [
                r[0]
                for r in conn.execute(
                    f"SELECT name FROM {schema.migrations.migrations_table} WHERE migration_set = ? ORDER BY rowid",
                    [schema.migrations.name],
                )
            ]
        return app_id, version, tables, applied, other_sets
    finally:
        conn.close()


def check_ours(path: Path) -> None:
    """Refuse someone else's SQLite file, and one written by a newer tpw; both before any write."""
    if not path.exists() or path.stat().st_size == 0:
        return
    app_id, version, tables, applied, other_sets = _inspect(path)
    known = schema.migration_names()
    # Only bookkeeping tables (an interrupted first open) hold nothing of anyone's;
    # migrations of another set mean another program's file, even with no tables yet.
    tables = [t for t in tables if t != schema.migrations.migrations_table and not t.startswith("sqlite_")]
    if other_sets and not applied:
        raise TpwError(
            f"{path} is not a tpw-desktop database (it records another program's migrations: "
            f"{plain(', '.join(other_sets[:3]), 80)}); tpw leaves it untouched: use --db to choose another file"
        )
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables and not applied):
        shown = ", ".join(sorted(tables)[:5]) + (" ..." if len(tables) > 5 else "")
        raise TpwError(
            f"{path} is not a tpw-desktop database (it holds other tables: {shown or 'none'}); "
            "tpw leaves it untouched: use --db to choose another file"
        )
    unknown = [name for name in applied if name not in known]
    if version > len(known) or unknown:
        raise TpwError(
            f"{path}: this database was written by a newer tpw-desktop (schema {max(version, len(applied))}, "
            f"this version knows {len(known)}); upgrade tpw-desktop, or use --db for a new file"
        )


def writable(path: Path) -> str | None:
    """Why a database at ``path`` can't be written (WAL needs its folder too), or None."""
    folder = path.parent if path.parent.exists() else next(p for p in path.parents if p.exists())
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is read-only"
    if not os.access(folder, os.W_OK):
        return f"its folder {folder} is read-only (SQLite writes its journal there)"
    return None


def connect(path: str | os.PathLike | None = None, *, readonly: bool = False) -> Database:
    """A new connection (one per thread), checked and migrated to the current schema, in WAL mode.

    WAL lets the window read while the writer thread writes; the busy timeout
    turns another process's write lock into a short wait instead of an error.
    ``readonly`` opens an existing file for reading only, never changing it.
    """
    path = Path(path) if path is not None else default_db_path()
    try:
        check_ours(path)
        if readonly:
            return _connect_readonly(path)
        why = writable(path)
        if why:
            raise DatabaseReadOnly(f"{path}: the session database can't be written: {why}")
        _create_private(path)
        db = Database(path)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: commits survive a process kill
        _enable_wal(db)
        _migrate(db)
    except (OSError, sqlite3.DatabaseError) as exc:
        raise TpwError(f"{path}: cannot open the session database ({describe_sqlite_error(exc, path)})") from None
    return db


def _enable_wal(db: Database) -> None:
    """Switch to WAL, waiting out another process doing the same: two connections that both read the
    journal mode and then ask for the exclusive lock deadlock, and SQLite answers "locked" at once
    rather than calling the busy handler, so the wait is here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))  # apart, so one of the two gets there first


def _connect_readonly(path: Path) -> Database:
    if not path.exists():
        raise TpwError(f"{path}: no session database here yet (run `tpw bench` or the app to make one)")
    conn = _open_read_only(path)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db = Database(conn)
    if schema.migrations.pending(db):
        conn.close()
        raise DatabaseReadOnly(f"{path}: this database needs upgrading to this tpw version, and it is read-only")
    return db


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that can't write; never creates a journal or changes the file."""
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        # A WAL database in a read-only folder can't make its -shm file: read it as immutable
        # (nobody can be writing to it there anyway).
        conn.close()
        conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    return conn


def _migrate(db: Database) -> None:
    """Apply pending migrations under one write lock, so two processes opening
    a new file at once can't both try to create the same tables; then stamp it as ours."""
    stamped = db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    if stamped and not schema.migrations.pending(db) and not schema.missing_record_columns(db):
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        schema.apply(db)
        db.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.conn.execute(f"PRAGMA user_version = {len(schema.migration_names())}")
    except BaseException:
        db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")
