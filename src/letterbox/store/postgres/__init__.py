"""The shared mail store on PostgreSQL: several front ends on one database.

See store.py (accounts, pool, change feed over LISTEN/NOTIFY), account.py (messages),
mailboxes.py (CREATE, DELETE, RENAME), blobs.py (message bodies), schema.py (migrations).
"""

from .schema import migrate, migrate_database
from .store import PostgresStore

__all__ = ["PostgresStore", "migrate", "migrate_database"]
