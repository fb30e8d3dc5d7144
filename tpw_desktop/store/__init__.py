"""The session database: sqlite-utils schema and migrations, a writer thread, a query API."""

from .db import DatabaseReadOnly, connect
from .schema import schema_version
from .store import Store
from .writer import SaveFailed, SessionWriter, open_recorder

__all__ = [
    "DatabaseReadOnly",
    "SaveFailed",
    "SessionWriter",
    "Store",
    "connect",
    "open_recorder",
    "schema_version",
]
