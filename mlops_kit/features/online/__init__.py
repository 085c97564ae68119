"""Online stores behind one interface: SQLite (the default) and Redis.

``base`` holds the interface (``OnlineStore``), the row form (``OnlineRows``) and
``NO_CREATED``; ``sqlite`` and ``redis`` the engines. TTL is applied on read above the
engines (``serving.read_online``), so every engine serves the same values. ``redis_ops``
stops and restarts the real server of a loopback Redis URL (outage drills).
"""

from .base import NO_CREATED, OnlineRows, OnlineStore
from .redis import RedisOnlineStore
from .redis_ops import RedisServerControl, RedisServerInfo, is_loopback
from .sqlite import SqliteOnlineStore, table_name

__all__ = ["OnlineStore", "SqliteOnlineStore", "RedisOnlineStore", "OnlineRows", "NO_CREATED", "table_name",
           "RedisServerControl", "RedisServerInfo", "is_loopback"]
