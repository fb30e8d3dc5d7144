"""The session database: sqlite-utils schema and migrations, a writer thread, a query API."""
from .db import connect
from .schema import SESSION_STATUSES, schema_version
from .store import Store
from .writer import SessionWriter

__all__ = ["SESSION_STATUSES", "SessionWriter", "Store", "connect", "schema_version"]
