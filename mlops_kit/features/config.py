"""Which engines a feature store uses: ``feature_store.toml`` at the workspace root.

The file is optional; without it the store uses SQLite online and DuckDB offline::

    # <workspace>/feature_store.toml
    online_store = "redis://:secret@127.0.0.1:6379/0"   # or "sqlite" (the default)
    offline_engine = "duckdb"                            # the default; or "spark" (local[2])
                                                         # or "spark://host:port" (a standalone cluster)
    project = "fraud"                                    # optional: the Redis key namespace

``FeatureStore(root, online_store=..., offline_engine=...)`` overrides the file value by
value (``offline_engine`` may also be a ``pyspark.sql.SparkSession`` object, used as it is;
see ``mlops_kit.features.spark_engine``). Every value is parsed once, here, before any engine starts; anything unknown raises
``StoreConfigError`` listing what is supported. Each setting is a kind, optionally with a URL:
``_ONLINE`` and ``_OFFLINE`` map a kind (a bare word or a URL scheme) to its parser, so an
engine is one entry (Spark: ``"spark"`` and ``"spark://host:port"``).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from ..errors import StoreConfigError, ValidationError

__all__ = ["CONFIG_FILE", "duckdb_memory_limit_arg", "EngineConfig", "StoreConfig", "load_store_config", "parse_online_store",
           "parse_offline_engine", "mask_url", "namespace_for"]

CONFIG_FILE = "feature_store.toml"
_KEYS = ("online_store", "offline_engine", "project")
_PROJECT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class EngineConfig:
    """One engine setting: its kind and, for a server, where it is.

    ``repr`` shows the URL with its password masked; ``masked_url`` is safe to print or log.
    """

    kind: str
    url: str | None = None
    host: str | None = None
    port: int | None = None
    db: int | None = None
    password: str | None = field(default=None, repr=False)
    master: str | None = None  # Spark: "local[2]" or the spark:// URL
    session: object = field(default=None, repr=False, compare=False)  # a given SparkSession

    def __repr__(self) -> str:
        where = "" if self.url is None else f", url={self.masked_url!r}"
        return f"EngineConfig(kind={self.kind!r}{where})"

    @property
    def masked_url(self) -> str | None:
        return None if self.url is None else mask_url(self.url)

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind}
        if self.url is not None:
            out["url"] = self.masked_url
        if self.master is not None:
            out["master"] = self.master
        return out


@dataclass(frozen=True)
class StoreConfig:
    """The resolved engines of one store and where each value came from."""

    online: EngineConfig
    offline: EngineConfig
    project: str | None = None
    source: Path | None = None  # the feature_store.toml that was read, if any
    overrides: tuple[str, ...] = ()  # settings given to the constructor


def mask_url(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    creds, _, tail = rest.partition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else '***'}@{tail}"


def _fail(setting: str, value: object, why: str, supported: tuple[str, ...], where: str) -> StoreConfigError:
    shown = mask_url(value) if isinstance(value, str) else repr(value)
    return StoreConfigError(
        f"{where}: {setting} = {shown!r} {why}.",
        fix=f"Use one of: {', '.join(supported)}.", setting=setting, supported=list(supported))


def _host_port(parts: SplitResult, bad: Callable[[str], StoreConfigError]) -> tuple[str, int | None]:
    """The URL's host and port (None when left out); ``bad(why)`` makes the error to raise."""
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise bad("has a port that is not a number in 1..65535") from None
    if not host:
        raise bad("has no host")
    return host, port


# -- online stores -------------------------------------------------------------------------------
def _online_sqlite(value: str, parts: SplitResult | None, where: str) -> EngineConfig:
    return EngineConfig(kind="sqlite")


def _online_redis(value: str, parts: SplitResult | None, where: str) -> EngineConfig:
    assert parts is not None
    bad = lambda why: _fail("online_store", value, why, ONLINE_SUPPORTED, where)  # noqa: E731
    if parts.query or parts.fragment:
        raise bad("has a query or fragment (put the db number in the path: /0)")
    if parts.username:
        raise bad("names a user (write only the password: redis://:password@host:port/db)")
    host, port = _host_port(parts, bad)
    path = parts.path.lstrip("/")
    if path and not path.isdigit():
        raise bad(f"has db {path!r}, not a number")
    password = unquote(parts.password) if parts.password is not None else None
    if parts.password is not None and not password:
        raise bad("has an empty password (drop the ':@' or give the password)")
    return EngineConfig(kind="redis", url=value, host=host, port=port or 6379,
                        db=int(path) if path else 0, password=password)


_ONLINE: dict[str, Callable[[str, SplitResult | None, str], EngineConfig]] = {
    "sqlite": _online_sqlite, "redis": _online_redis}
ONLINE_SUPPORTED = ('"sqlite" (default)', '"redis://[:password@]host:port/db"')


# -- offline engines -----------------------------------------------------------------------------
def _offline_duckdb(value: str, parts: SplitResult | None, where: str) -> EngineConfig:
    return EngineConfig(kind="duckdb")


SPARK_LOCAL_MASTER = "local[2]"


def _offline_spark(value: str, parts: SplitResult | None, where: str) -> EngineConfig:
    if parts is None:
        return EngineConfig(kind="spark", master=SPARK_LOCAL_MASTER)
    bad = lambda why: _fail("offline_engine", value, why, OFFLINE_SUPPORTED, where)  # noqa: E731
    if parts.username or parts.password:
        raise bad("has credentials (a standalone master URL is spark://host:port)")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise bad("has a path, query or fragment (write spark://host:port)")
    host, port = _host_port(parts, bad)
    url = f"spark://{host}:{port or 7077}"
    return EngineConfig(kind="spark", url=url, host=host, port=port or 7077, master=url)


def _offline_session(value: object) -> EngineConfig | None:
    """An ``EngineConfig`` for a ``SparkSession`` object, or None if ``value`` is not one."""
    if not any(c.__module__.startswith("pyspark.sql") and c.__name__ == "SparkSession"
               for c in type(value).__mro__):
        return None
    master = value.sparkContext.master  # type: ignore[attr-defined]
    return EngineConfig(kind="spark", url=master if master.startswith("spark://") else None,
                        master=master, session=value)


_OFFLINE: dict[str, Callable[[str, SplitResult | None, str], EngineConfig]] = {
    "duckdb": _offline_duckdb, "spark": _offline_spark}
OFFLINE_SUPPORTED = ('"duckdb" (default)', '"spark" (local[2])', '"spark://host:port"',
                     "a pyspark.sql.SparkSession object")


def _parse(setting: str, value: object, table: dict, supported: tuple[str, ...], where: str) -> EngineConfig:
    if not isinstance(value, str) or not value.strip():
        raise _fail(setting, value, "is not a non-empty string", supported, where)
    text = value.strip()
    if "://" in text:
        parts = urlsplit(text)
        kind, url_parts = parts.scheme.lower(), parts
        if kind not in table or kind in ("sqlite", "duckdb"):
            raise _fail(setting, value, f"has an unsupported scheme {parts.scheme!r}", supported, where)
    else:
        kind, url_parts = text.lower(), None
        if kind not in table or kind == "redis":
            raise _fail(setting, value, "is not a supported engine", supported, where)
    return table[kind](text, url_parts, where)


def parse_online_store(value: object, where: str = "online_store") -> EngineConfig:
    """``"sqlite"`` or ``"redis://[:password@]host:port/db"`` (port 6379 and db 0 if left out)."""
    return _parse("online_store", value, _ONLINE, ONLINE_SUPPORTED, where)


def parse_offline_engine(value: object, where: str = "offline_engine") -> EngineConfig:
    """``"duckdb"``, ``"spark"`` (local[2]), ``"spark://host:port"`` or a ``SparkSession`` object."""
    session = _offline_session(value)
    if session is not None:
        return session
    return _parse("offline_engine", value, _OFFLINE, OFFLINE_SUPPORTED, where)


def _read_file(path: Path) -> dict[str, object]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StoreConfigError(f"{path}: not valid TOML ({exc}).",
                               fix='Write lines like online_store = "sqlite".', setting=None,
                               supported=list(_KEYS)) from None
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise StoreConfigError(f"{path}: unknown key(s) {unknown}.",
                               fix=f"Use only {', '.join(_KEYS)}.", setting=unknown[0], supported=list(_KEYS))
    return data


def load_store_config(root: str | Path, *, online_store: str | None = None,
                      offline_engine: str | None = None) -> StoreConfig:
    """The engines for the workspace at ``root``: its ``feature_store.toml``, then the overrides."""
    path = Path(root) / CONFIG_FILE
    data = _read_file(path) if path.is_file() else {}
    source = path if path.is_file() else None
    where = str(path) if source else "FeatureStore"
    overrides = tuple(n for n, v in (("online_store", online_store), ("offline_engine", offline_engine))
                      if v is not None)
    online = (parse_online_store(online_store, "FeatureStore(online_store=...)") if online_store is not None
              else parse_online_store(data.get("online_store", "sqlite"), where))
    offline = (parse_offline_engine(offline_engine, "FeatureStore(offline_engine=...)")
               if offline_engine is not None else parse_offline_engine(data.get("offline_engine", "duckdb"), where))
    project = data.get("project")
    if project is not None and (not isinstance(project, str) or not _PROJECT.match(project)):
        raise StoreConfigError(f"{where}: project = {project!r} is not a name of 1-64 letters, digits, '_.-'.",
                               fix='Write e.g. project = "fraud", or leave it out.', setting="project",
                               supported=["a name of 1-64 letters, digits, '_', '.', '-'"])
    return StoreConfig(online=online, offline=offline, project=project, source=source, overrides=overrides)


def namespace_for(root: str | Path, project: str | None) -> str:
    """The key namespace of a workspace on a shared server: ``project``, else a hash of the root."""
    if project is not None:
        return f"p.{project}"
    return "w." + hashlib.sha256(str(Path(root).resolve()).encode("utf-8")).hexdigest()[:16]


_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", re.IGNORECASE)


def duckdb_memory_limit_arg(value: object) -> str:
    """A DuckDB size string (``"4GB"``, ``"512MB"``, ``"1.5GiB"``) of at least 32 MB."""
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    unit = _SIZE_UNITS.get(match[2].lower()) if match else None
    if unit is None or float(match[1]) * unit < 32 * 10**6:
        raise ValidationError(f"duckdb_memory_limit must be a size of at least 32MB such as '4GB' or "
                              f"'512MB', got {value!r}.",
                              fix="Pass a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB or TiB), "
                                  "e.g. duckdb_memory_limit='2GB'.", value=repr(value))
    return value.strip()
