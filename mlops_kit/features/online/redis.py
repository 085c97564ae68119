"""A Redis online store (redis-py + hiredis), same semantics as the SQLite one.

Layout: one hash per (namespace, view, version, entity key) at
``mk:<namespace>:<view>:v<version>:<key>``, where ``<key>`` is ``i<int>`` or ``s<str>`` for
a single join key and ``j<json list>`` for a composite one (type-tagged, so ``1`` and
``"1"`` are different entities, as in SQLite). The hash holds ``__ts`` (40 digits: event and
created timestamps in microseconds, each plus 2**63 and zero-padded to 20, so comparing
them in order is exact for every int64) and one field per non-null feature value: ints,
bools and timestamps as decimal text, floats as ``repr`` (exact round trip; NaN is null, as
in SQLite and ingest), strings as UTF-8. A null is an absent field. ``mk:<ns>:<view>:v<n>:#n``
counts the entities of a view version.

Writes run a server-side Lua script per batch (EVALSHA), several batches per pipeline:
the guard (replace only when ``(event, created)`` is not earlier than the stored pair) is
checked and applied atomically per row on the server, so concurrent materializations end
as if they had run one after the other. Reads are one HMGET for one key, else one read
script call (one round trip) per 2,000 distinct keys. No EXPIRE is set: TTL is decided on
read, relative to the caller's ``at`` (which may be any time), by the same code as for
SQLite (``serving.read_online``); a server-side expiry would decide what such a read returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ...errors import OnlineStoreUnavailableError, StoreConfigError
from ..config import EngineConfig, mask_url, parse_online_store
from ..definitions import FeatureView
from .base import OnlineRows, OnlineStore

try:  # the optional extra: pip install -e ".[redis]"
    import redis as _redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - exercised only without the extra
    _redis = None  # type: ignore[assignment]

__all__ = ["RedisOnlineStore"]

_OFFSET = 2**63
_NULL = b"\xff"  # never valid UTF-8, never a number: marks a null value in the script's arguments
_BATCH = 1_000  # rows per script call
_PIPE = 20  # script calls per pipeline round trip
_READ_CHUNK = 2_000  # keys per read script call

_WRITE_LUA = r"""
-- KEYS[1]: the view's entity counter; KEYS[2..]: entity hashes.
-- ARGV[1] = F (number of features), ARGV[2..F+1] = feature field names, then per entity:
-- its 40-digit '__ts' followed by F values ('\255' = null, stored as an absent field).
local nf = tonumber(ARGV[1])
local null = '\255'
local function not_earlier(new, old)
  if new == old then return true end
  for k = 1, 31, 10 do  -- 4 chunks of 10 digits: exact as doubles, locale-free
    local x, y = tonumber(string.sub(new, k, k + 9)), tonumber(string.sub(old, k, k + 9))
    if x ~= y then return x > y end
  end
  return true
end
local changed, added = 0, 0
local a = nf + 2
for i = 2, #KEYS do
  local key = KEYS[i]
  local ts = ARGV[a]
  local old = redis.call('HGET', key, '__ts')
  if (not old) or not_earlier(ts, old) then
    if old then redis.call('DEL', key) else added = added + 1 end
    local args = {'__ts', ts}
    for j = 1, nf do
      local v = ARGV[a + j]
      if v ~= null then
        args[#args + 1] = ARGV[1 + j]
        args[#args + 1] = v
      end
    end
    redis.call('HSET', key, unpack(args))
    changed = changed + 1
  end
  a = a + nf + 1
end
if added > 0 then redis.call('INCRBY', KEYS[1], added) end
return changed
"""

_READ_LUA = r"""
-- KEYS: entity hashes; ARGV: the fields to read. One HMGET per key, one reply for all.
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HMGET', key, unpack(ARGV)) end
return out
"""


def _enc_int(v: Any) -> bytes:
    return _NULL if v is None else b"%d" % v


def _enc_float(v: Any) -> bytes | str:
    return _NULL if v is None or v != v else repr(float(v))


def _enc_str(v: Any) -> bytes:
    return _NULL if v is None else str(v).encode("utf-8")


def _dec_str(v: bytes) -> str:
    return v.decode("utf-8")


_ENCODE = {"int64": _enc_int, "bool": _enc_int, "timestamp": _enc_int, "float64": _enc_float, "string": _enc_str}
_DECODE = {"int64": int, "bool": int, "timestamp": int, "float64": float, "string": _dec_str}


def entity_key(key: tuple) -> str:
    """The type-tagged text of an entity key (the last part of its hash key)."""
    if len(key) == 1:
        k = key[0]
        return ("s" + k) if isinstance(k, str) else ("i%d" % k)
    return "j" + json.dumps(list(key), ensure_ascii=False, separators=(",", ":"))


def _ts40(event: int, created: int | None) -> str:
    return "%020d%020d" % (event + _OFFSET, (-_OFFSET if created is None else created) + _OFFSET)


class RedisOnlineStore(OnlineStore):
    """Online store on a Redis server: ``RedisOnlineStore("redis://[:pw@]host:port/db", namespace=...)``.

    The constructor connects and PINGs, so a wrong URL fails here. Every server fault
    (refused, lost connection, wrong password, db out of range) raises
    ``OnlineStoreUnavailableError`` naming the URL with the password masked.
    """

    def __init__(self, url: str | EngineConfig, *, namespace: str = "default",
                 connect_timeout: float = 2.0, timeout: float = 30.0) -> None:
        cfg = url if isinstance(url, EngineConfig) else parse_online_store(url, "RedisOnlineStore(url)")
        if cfg.kind != "redis":
            raise StoreConfigError(f"RedisOnlineStore: {cfg.kind!r} is not a Redis URL.",
                                   fix="Pass e.g. 'redis://127.0.0.1:6379/0'.", setting="online_store",
                                   supported=["redis://[:password@]host:port/db"])
        self.config = cfg
        self.url = mask_url(cfg.url or "")
        self.namespace = namespace
        if _redis is None:
            raise OnlineStoreUnavailableError(
                f"online store {self.url}: the redis client library is not installed.",
                fix='Install the extra: pip install -e ".[redis]" (redis and hiredis).', url=self.url)
        self._client = _redis.Redis(host=cfg.host, port=cfg.port, db=cfg.db, password=cfg.password,
                                    socket_connect_timeout=connect_timeout, socket_timeout=timeout,
                                    retry=Retry(NoBackoff(), 1), protocol=2, decode_responses=False)
        self._write = self._client.register_script(_WRITE_LUA)
        self._read = self._client.register_script(_READ_LUA)
        with self._guard("connect"):
            self._client.ping()

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self.url!r}, namespace={self.namespace!r})"

    def describe(self) -> dict[str, object]:
        return {"kind": "redis", "url": self.url, "namespace": self.namespace}

    @property
    def client(self) -> Any:
        """The underlying ``redis.Redis`` client (bytes in, bytes out)."""
        return self._client

    def close(self) -> None:
        self._client.close()

    # -- keys and faults -------------------------------------------------------------------------
    def prefix(self, view: FeatureView) -> str:
        """Common prefix of the view version's keys: ``mk:<namespace>:<view>:v<version>:``."""
        return f"mk:{self.namespace}:{view.name}:v{view.version}:"

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except _redis.RedisError as exc:
            raise self._unavailable(action, exc) from exc

    def _unavailable(self, action: str, exc: Exception) -> OnlineStoreUnavailableError:
        cfg = self.config
        text = str(exc)
        if cfg.password:
            text = text.replace(cfg.password, "***")
        where = f"{cfg.host}:{cfg.port}"
        if isinstance(exc, _redis.AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text:
            fix = ("Check the password in online_store (redis://:PASSWORD@host:port/db) against the "
                   "server's requirepass.")
        elif "DB index" in text:
            fix = (f"Use a db number below the server's 'databases' setting (16 by default); "
                   f"the URL asks for db {cfg.db}.")
        elif isinstance(exc, (_redis.ConnectionError, _redis.TimeoutError)):
            fix = (f"Check that redis-server is running and reachable at {where} "
                   f"(redis-cli -h {cfg.host} -p {cfg.port} ping), or set online_store = \"sqlite\"; "
                   "an interrupted materialization is completed by running it again.")
        else:
            fix = "Check that the server is a Redis >= 6 that this workspace's namespace owns."
        return OnlineStoreUnavailableError(
            f"online store {self.url} is unavailable during {action}: {type(exc).__name__}: {text}.",
            fix=fix, url=self.url, action=action)

    # -- writes -----------------------------------------------------------------------------------
    def _flush(self, pipe: Any) -> int:
        """Send the pipelined script calls; the number of rows they changed."""
        return sum(int(n) for n in pipe.execute())

    def write_rows(self, view: FeatureView, key_dtypes: dict[str, str], rows: Iterable[tuple]) -> int:
        prefix = self.prefix(view)
        names = list(view.feature_names)
        encoders = [_ENCODE[f.dtype] for f in view.features]
        nk = len(view.join_keys)
        header: list[Any] = [len(names), *names]
        counter = prefix + "#n"
        changed = 0
        with self._guard(f"write of {view.name!r} v{view.version}"):
            pipe = self._client.pipeline(transaction=False)
            keys: list[str] = [counter]
            args: list[Any] = list(header)
            for row in rows:
                if nk == 1:
                    k = row[0]
                    keys.append(prefix + (("s" + k) if isinstance(k, str) else ("i%d" % k)))
                else:
                    keys.append(prefix + entity_key(tuple(row[:nk])))
                args.append(_ts40(row[nk], row[nk + 1]))
                args += [enc(v) for enc, v in zip(encoders, row[nk + 2:])]
                if len(keys) > _BATCH:
                    self._write(keys=keys, args=args, client=pipe)
                    keys, args = [counter], list(header)
                    if len(pipe) >= _PIPE:
                        changed += self._flush(pipe)
            if len(keys) > 1:
                self._write(keys=keys, args=args, client=pipe)
            if len(pipe):
                changed += self._flush(pipe)
        return changed

    # -- reads ------------------------------------------------------------------------------------
    def read_rows(self, view: FeatureView, features: Sequence[str], keys: Sequence[tuple]) -> OnlineRows:
        dtypes = {f.name: f.dtype for f in view.features}
        fields = ["__ts", *features]
        prefix = self.prefix(view)
        unique = list(dict.fromkeys(keys))
        found: dict[tuple, list] = {}
        with self._guard(f"read of {view.name!r} v{view.version}"):
            if len(unique) == 1:
                found[unique[0]] = self._client.execute_command("HMGET", prefix + entity_key(unique[0]), *fields)
            else:
                for start in range(0, len(unique), _READ_CHUNK):
                    chunk = unique[start:start + _READ_CHUNK]
                    found.update(zip(chunk, self._read(keys=[prefix + entity_key(k) for k in chunk], args=fields)))
        decoders = [_DECODE[dtypes[f]] for f in features]
        ts: list[int | None] = []
        values: dict[str, list[object]] = {f: [] for f in features}
        columns = [values[f] for f in features]
        for key in keys:
            reply = found.get(key)
            if reply is None or reply[0] is None:
                ts.append(None)
                for col in columns:
                    col.append(None)
                continue
            ts.append(int(reply[0][:20]) - _OFFSET)
            for col, dec, raw in zip(columns, decoders, reply[1:]):
                col.append(None if raw is None else dec(raw))
        return ts, values

    def count(self, view: FeatureView) -> int:
        with self._guard(f"count of {view.name!r} v{view.version}"):
            value = self._client.get(self.prefix(view) + "#n")
        return 0 if value is None else int(value)
