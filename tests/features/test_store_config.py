"""Engine configuration: feature_store.toml, constructor overrides, refusals, describe()."""

from __future__ import annotations

import pytest

from mlops_kit.errors import MlopsKitError, StoreConfigError, ValidationError
from mlops_kit.features import FeatureStore, RedisOnlineStore, SqliteOnlineStore, load_store_config
from mlops_kit.features.config import mask_url, namespace_for, parse_offline_engine, parse_online_store


def _toml(ws, text: str):
    (ws.root / "feature_store.toml").write_text(text, encoding="utf-8")


def test_default_is_sqlite_and_duckdb_without_a_file(workspace):
    store = FeatureStore(workspace)
    assert isinstance(store.online, SqliteOnlineStore) and store.online.path == workspace.online_db
    assert store.describe() == {"online_store": {"kind": "sqlite", "path": str(workspace.online_db)},
                                "offline_engine": {"kind": "duckdb"}, "config_file": None}
    assert repr(store) == f"FeatureStore({str(workspace.root)!r}, online=sqlite, offline=duckdb)"
    store.close()


def test_file_selects_redis_and_masks_the_password(workspace, start_redis):
    server = start_redis(password="s3cr3t-pw")
    _toml(workspace, f'online_store = "{server.url}"\noffline_engine = "duckdb"\nproject = "fraud"\n')
    store = FeatureStore(workspace)
    assert isinstance(store.online, RedisOnlineStore)
    masked = f"redis://:***@127.0.0.1:{server.port}/0"
    assert store.describe() == {"online_store": {"kind": "redis", "url": masked, "namespace": "p.fraud"},
                                "offline_engine": {"kind": "duckdb"},
                                "config_file": str(workspace.root / "feature_store.toml")}
    assert masked in repr(store) and "s3cr3t" not in repr(store) + repr(store.config)
    store.close()


def test_constructor_overrides_the_file_and_online_object_wins(workspace, tmp_path):
    _toml(workspace, 'online_store = "redis://127.0.0.1:1/0"\n')  # nothing listens on port 1
    store = FeatureStore(workspace, online_store="sqlite")
    assert store.describe()["online_store"]["kind"] == "sqlite" and store.config.overrides == ("online_store",)
    store.close()
    own = SqliteOnlineStore(tmp_path / "elsewhere.sqlite")
    store = FeatureStore(workspace, online=own)
    assert store.online is own and store.describe()["online_store"]["path"] == str(tmp_path / "elsewhere.sqlite")
    store.close()


@pytest.mark.parametrize("text, needle", [
    ('online = "sqlite"\n', "unknown key(s) ['online']"),
    ('online_store = "memcached://h:1/0"\n', "unsupported scheme 'memcached'"),
    ('online_store = "redis"\n', "is not a supported engine"),
    ('online_store = "redis://h:port/0"\n', "port that is not a number"),
    ('online_store = "redis://h:6379/zero"\n', "has db 'zero', not a number"),
    ('online_store = "redis://:6379/0"\n', "has no host"),
    ('online_store = "redis://user:pw@h:6379/0"\n', "names a user"),
    ('online_store = "redis://h:6379/0?ssl=1"\n', "query or fragment"),
    ('online_store = 6379\n', "is not a non-empty string"),
    ('offline_engine = "polars"\n', "is not a supported engine"),
    ('offline_engine = "hive://h:10000"\n', "unsupported scheme 'hive'"),
    ('project = "a b"\n', "project = 'a b' is not a name"),
    ('online_store = "sqlite\n', "not valid TOML"),
])
def test_bad_file_values_are_refused_with_what_is_supported(workspace, text, needle):
    _toml(workspace, text)
    with pytest.raises(StoreConfigError) as err:
        FeatureStore(workspace)
    assert needle in str(err.value) and "Fix:" in str(err.value)
    assert isinstance(err.value, ValidationError) and isinstance(err.value, MlopsKitError)
    assert str(workspace.root / "feature_store.toml") in str(err.value)
    assert not workspace.features_db.exists()  # refused before any engine started


def test_errors_list_the_supported_values_and_never_the_password():
    with pytest.raises(StoreConfigError) as err:
        parse_online_store("rediss://:hunter2@h:1/0")
    assert "hunter2" not in str(err.value) and "redis://[:password@]host:port/db" in str(err.value)
    assert err.value.details["supported"] == ['"sqlite" (default)', '"redis://[:password@]host:port/db"']
    with pytest.raises(StoreConfigError, match=r'Use one of: "duckdb" \(default\)'):
        parse_offline_engine("polars")
    with pytest.raises(StoreConfigError, match="FeatureStore\\(online_store=...\\)"):
        load_store_config("/nonexistent-root", online_store="redis://h:99999/0")


def test_url_parsing_and_masking():
    cfg = parse_online_store("redis://:p%40ss@cache.local:6380/3")
    assert (cfg.kind, cfg.host, cfg.port, cfg.db, cfg.password) == ("redis", "cache.local", 6380, 3, "p@ss")
    assert cfg.masked_url == "redis://:***@cache.local:6380/3" and "p%40ss" not in repr(cfg)
    bare = parse_online_store(" REDIS://127.0.0.1 ")
    assert (bare.port, bare.db, bare.password) == (6379, 0, None)
    assert parse_online_store("SQLite").kind == "sqlite" and parse_offline_engine("DuckDB").kind == "duckdb"
    assert mask_url("redis://h:1/0") == "redis://h:1/0" and mask_url("sqlite") == "sqlite"


def test_namespaces_are_stable_per_root_and_project(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert namespace_for(a, None) == namespace_for(tmp_path / "x" / ".." / "a", None) != namespace_for(b, None)
    assert namespace_for(a, "fraud") == namespace_for(b, "fraud") == "p.fraud"
