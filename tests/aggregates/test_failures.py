"""Bad input is refused before anything is written; interrupted runs leave the table intact."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_kit.aggregates import (AggregateSpec, AggregateState, RollingAggregate, RunReport,
                                  full_refresh, incremental_update, load_state, read_aggregates,
                                  scan_partitions, write_partitioned)
from mlops_kit.aggregates import _runner
from mlops_kit.errors import (ConflictError, DefinitionConflictError, IntegrityError,
                              NotFoundError, SchemaError, TimezoneError, ValidationError)

from ._helpers import START, make_transactions
from .test_compute import make_spec

AS_OF = START + timedelta(days=30)


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


@pytest.fixture
def built(tmp_path):
    """A source of 8 days and a table built from its first 6 days."""
    df = make_transactions(21, n=300, days=8)
    src = tmp_path / "src"
    write_partitioned(df[df["event_timestamp"] < START + timedelta(days=6)], src)
    spec = make_spec()
    full_refresh(src, spec, tmp_path / "t", as_of=START + timedelta(days=7))
    return df, src, spec, tmp_path / "t"


def snapshot(table):
    return (table / "state.json").read_bytes(), files_under(table), read_aggregates(table)


def assert_unchanged(table, before):
    state, files, frame = before
    assert (table / "state.json").read_bytes() == state
    assert files_under(table) == files
    pd.testing.assert_frame_equal(read_aggregates(table), frame)


def test_unknown_column_writes_nothing(tmp_path):
    df = make_transactions(1, n=50, days=3)
    write_partitioned(df, tmp_path / "src")
    spec = AggregateSpec(name="s", aggregates=[RollingAggregate(
        name="x", column="amount_usd", function="sum", window=timedelta(days=1),
        entity_key="user_id")])
    with pytest.raises(SchemaError, match="amount_usd") as info:
        full_refresh(tmp_path / "src", spec, tmp_path / "t", as_of=AS_OF)
    assert info.value.details["missing"] == ["amount_usd"] and info.value.fix
    assert not (tmp_path / "t").exists()


def test_non_numeric_sum_and_missing_source(tmp_path):
    df = make_transactions(1, n=50, days=3)
    df["merchant_id"] = df["merchant_id"].astype(str)
    write_partitioned(df, tmp_path / "src")
    spec = AggregateSpec(name="s", aggregates=[RollingAggregate(
        name="x", column="merchant_id", function="mean", window=timedelta(days=1),
        entity_key="user_id")])
    with pytest.raises(SchemaError, match="numeric"):
        full_refresh(tmp_path / "src", spec, tmp_path / "t", as_of=AS_OF)
    with pytest.raises(NotFoundError, match="does not exist"):
        full_refresh(tmp_path / "nowhere", make_spec(), tmp_path / "t", as_of=AS_OF)
    assert not (tmp_path / "t").exists()


def test_naive_timestamps_are_refused(tmp_path):
    df = make_transactions(2, n=40, days=2)
    naive = df.assign(event_timestamp=df["event_timestamp"].dt.tz_localize(None))
    with pytest.raises(TimezoneError, match="tz_localize"):
        write_partitioned(naive, tmp_path / "src")
    folder = tmp_path / "src" / "date=2024-03-01"
    folder.mkdir(parents=True)
    rows = df[df["event_timestamp"].dt.date == START.date()]
    table = pa.Table.from_pandas(rows.assign(ingested_at=rows["ingested_at"].dt.tz_localize(None)),
                                 preserve_index=False)
    pq.write_table(table, folder / "part-0000.parquet")
    with pytest.raises(TimezoneError, match="ingested_at"):
        full_refresh(tmp_path / "src", make_spec(), tmp_path / "t", as_of=AS_OF)
    with pytest.raises(TimezoneError, match="naive"):
        full_refresh(tmp_path / "src", make_spec(), tmp_path / "t", as_of=datetime(2024, 4, 1))
    assert not (tmp_path / "t").exists()


def test_bad_rows_in_partitions_are_refused(tmp_path):
    df = make_transactions(3, n=60, days=3)
    folder = tmp_path / "src" / "date=2024-03-01"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), folder / "part-0000.parquet")
    with pytest.raises(SchemaError, match="not their event date"):
        full_refresh(tmp_path / "src", make_spec(), tmp_path / "t", as_of=AS_OF)
    nulls = tmp_path / "src2"
    write_partitioned(df.astype({"user_id": "Int64"}).assign(
        user_id=lambda d: d["user_id"].mask(d.index == 3)), nulls)
    with pytest.raises(SchemaError, match="null 'user_id'"):
        full_refresh(nulls, make_spec(), tmp_path / "t", as_of=AS_OF)
    (tmp_path / "src3" / "date=2024-13-01").mkdir(parents=True)
    with pytest.raises(SchemaError, match="not a valid date"):
        scan_partitions(tmp_path / "src3", ingested_field="ingested_at")
    assert not (tmp_path / "t").exists()


def test_state_of_another_spec_or_source_is_refused(built, tmp_path):
    df, src, spec, table = built
    before = snapshot(table)
    other = AggregateSpec(name=spec.name, aggregates=[
        RollingAggregate(name="amount_sum_24h", column="amount", function="sum",
                         window=timedelta(days=2), entity_key="user_id")])
    with pytest.raises(DefinitionConflictError, match="fingerprint") as info:
        incremental_update(src, other, table, as_of=AS_OF)
    assert "full_refresh" in info.value.fix
    write_partitioned(df, tmp_path / "copy")
    with pytest.raises(ConflictError, match="built from"):
        incremental_update(tmp_path / "copy", spec, table, as_of=AS_OF)
    with pytest.raises(ValidationError, match="before the last run"):
        incremental_update(src, spec, table, as_of=START)
    with pytest.raises(ValidationError, match="AggregateSpec"):
        incremental_update(src, spec.to_dict(), table, as_of=AS_OF)
    with pytest.raises(ValidationError, match="threads"):
        incremental_update(src, spec, table, as_of=AS_OF, threads=0)
    assert_unchanged(table, before)


@pytest.mark.parametrize("where", ["second_day_file", "state_commit"])
def test_interrupted_update_leaves_previous_table(built, monkeypatch, where):
    df, src, spec, table = built
    write_partitioned(df[df["event_timestamp"] >= START + timedelta(days=6)], src)
    late = df[df["event_timestamp"].dt.date == (START + timedelta(days=2)).date()].head(3)
    write_partitioned(late.assign(transaction_id=late["transaction_id"] + 5000,
                                  ingested_at=pd.Timestamp(START + timedelta(days=8))), src)
    before = snapshot(table)
    state_before = load_state(table)

    class Boom(RuntimeError):
        pass

    if where == "second_day_file":
        calls = []
        real = _runner._write_day

        def flaky(path, tbl):
            calls.append(path)
            if len(calls) == 2:
                raise Boom("disk full")
            real(path, tbl)
        monkeypatch.setattr(_runner, "_write_day", flaky)
    else:
        def boom(*_a, **_k):
            raise Boom("killed before commit")
        monkeypatch.setattr(_runner, "write_state", boom)
    with pytest.raises(Boom):
        incremental_update(src, spec, table, as_of=AS_OF)
    assert load_state(table) == state_before
    state, _, frame = before
    assert (table / "state.json").read_bytes() == state
    pd.testing.assert_frame_equal(read_aggregates(table), frame)
    monkeypatch.undo()
    report = incremental_update(src, spec, table, as_of=AS_OF)  # the retry completes
    assert report.mode == "incremental"
    full_refresh(src, spec, table.parent / "full", as_of=AS_OF)
    cols = [c for c in frame.columns if c != "created_timestamp"]
    pd.testing.assert_frame_equal(read_aggregates(table)[cols],
                                  read_aggregates(table.parent / "full")[cols])
    # the files the interrupted run left behind were collected
    referenced = {e["file"] for e in load_state(table).output.values()}
    assert {f for f in files_under(table / "data") if f.endswith(".parquet")} == {
        f[len("data/"):] for f in referenced}


def test_state_and_report_round_trip(built):
    _, src, spec, table = built
    state = load_state(table)
    assert AggregateState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    report = incremental_update(src, spec, table, as_of=AS_OF)
    assert RunReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    assert "scanned" in report.summary()


def test_corrupt_state_and_missing_table(built, tmp_path):
    _, src, spec, table = built
    with pytest.raises(ValidationError, match="no aggregate table"):
        read_aggregates(tmp_path / "empty")
    (table / "state.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        incremental_update(src, spec, table, as_of=AS_OF)
    (table / "state.json").write_text(json.dumps({"format": 1, "spec": {}}))
    with pytest.raises(IntegrityError, match="malformed"):
        load_state(table)


def test_write_partitioned_refuses_overwrite_and_bad_input(tmp_path):
    df = make_transactions(4, n=30, days=2)
    write_partitioned(df, tmp_path / "src", file_name="part-0000.parquet")
    before = files_under(tmp_path / "src")
    with pytest.raises(ValidationError, match="already exists"):
        write_partitioned(df, tmp_path / "src", file_name="part-0000.parquet")
    with pytest.raises(ValidationError, match="plain"):
        write_partitioned(df, tmp_path / "src", file_name="../x.parquet")
    with pytest.raises(SchemaError, match="not found"):
        write_partitioned(df, tmp_path / "src", timestamp_field="ts")
    with pytest.raises(ValidationError, match="DataFrame"):
        write_partitioned(df.to_dict(), tmp_path / "src")
    assert files_under(tmp_path / "src") == before
    appended = write_partitioned(df, tmp_path / "src")
    assert all(p.name == "part-0001.parquet" for p in appended)
