"""Online stores behind one interface: SQLite (the default) and Redis.

``base`` holds the interface (``OnlineStore``), the row form (``OnlineRows``) and
``NO_CREATED``; ``sqlite`` and ``redis`` the engines. TTL is applied on read above the
engines (``serving.read_online``), so every engine serves the same values.
"""

from .base import NO_CREATED, OnlineRows, OnlineStore
from .redis import RedisOnlineStore
from .sqlite import SqliteOnlineStore, table_name

__all__ = ["OnlineStore", "SqliteOnlineStore", "RedisOnlineStore", "OnlineRows", "NO_CREATED", "table_name"]
