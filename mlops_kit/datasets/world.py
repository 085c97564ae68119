"""``World``: the generated tables, their content fingerprint, and Parquet persistence.

``World.to_parquet(folder)`` writes one Parquet file per table plus ``world.json`` (the
scenario, the seed, the content fingerprint and the sha256 of every file). The same seed
and scenario give byte-identical files. ``load_world(folder)`` verifies every file hash
before reading, so a half-written or edited folder is refused instead of half-loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._io import atomic_path, atomic_write_json, sha256_file
from ..errors import IntegrityError, NotFoundError, SchemaError, ValidationError
from .scenario import Scenario

__all__ = ["World", "load_world", "TABLES", "require_columns"]

#: table names in write order
TABLES = ("users", "merchants", "transactions", "labels", "profiles")
MANIFEST = "world.json"


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], *, table: str) -> None:
    """Raise ``SchemaError`` naming every missing column (e.g. after a schema change)."""
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(f"{table}: expected a pandas DataFrame, got {type(frame).__name__}.",
                              fix=f"Pass world.{table}.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{table}: missing column(s) {missing}; found {list(frame.columns)}.",
            fix="The upstream schema changed (renamed field?): map the new name back, e.g. "
                "df.rename(columns={'amount_v2': 'amount'}), and add a contract check upstream.",
            table=table, missing=missing)
    numeric = [c for c in columns if c == "amount" and not pd.api.types.is_float_dtype(frame[c])]
    if numeric:
        raise SchemaError(
            f"{table}: column 'amount' must be float64, got {frame['amount'].dtype}.",
            fix="The upstream schema changed (retyped field?): convert it, e.g. "
                "df['amount'] = pd.to_numeric(df['amount']), and add a contract check upstream.",
            table=table, column="amount", dtype=str(frame["amount"].dtype))


def _column_digest(series: pd.Series) -> bytes:
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        values = np.asarray(series.astype("datetime64[us, UTC]").array.asi8, dtype="<i8")
    elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        values = np.ascontiguousarray(series.to_numpy())
        values = values.astype(values.dtype.newbyteorder("<"), copy=False)
    else:
        values = pd.util.hash_pandas_object(series, index=False).to_numpy().astype("<u8")
    return hashlib.sha256(values.tobytes()).digest()


def _frame_digest(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for name in frame.columns:
        digest.update(f"{name}:{frame[name].dtype}:{len(frame)}\n".encode())
        digest.update(_column_digest(frame[name]))
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class World:
    """The generated tables of one scenario and seed (treat the frames as read-only).

    Attributes
    ----------
    users:
        ``user_id, segment, home_country, signup_at``.
    merchants:
        ``merchant_id, merchant_category, country, onboarded_at``.
    transactions:
        ``transaction_id, user_id, merchant_id, amount, merchant_category, channel, country,
        event_timestamp, ingested_at``; duplicates repeat a ``transaction_id``.
    labels:
        ``transaction_id, is_fraud, label_timestamp`` (one row per transaction).
    profiles:
        SCD2 ``user_id, account_status, credit_limit, risk_tier, valid_from, valid_to``
        (``valid_to`` is null on the current row).
    """

    scenario: Scenario
    seed: int
    users: pd.DataFrame
    merchants: pd.DataFrame
    transactions: pd.DataFrame
    labels: pd.DataFrame
    profiles: pd.DataFrame

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, Scenario):
            raise ValidationError(f"World: scenario must be a Scenario, got {type(self.scenario).__name__}.",
                                  fix="Build worlds with generate_world(...) or load_world(...).")
        for name in TABLES:
            if not isinstance(getattr(self, name), pd.DataFrame):
                raise ValidationError(f"World: {name} must be a pandas DataFrame, "
                                      f"got {type(getattr(self, name)).__name__}.",
                                      fix="Build worlds with generate_world(...) or load_world(...).")

    def __repr__(self) -> str:
        rows = ", ".join(f"{name}={len(frame):,}" for name, frame in self.tables().items())
        return f"World(scenario={self.scenario.name!r}, seed={self.seed}, {rows})"

    def tables(self) -> dict[str, pd.DataFrame]:
        """The five tables by name."""
        return {name: getattr(self, name) for name in TABLES}

    def fingerprint(self) -> str:
        """sha256 of the tables' content (names, dtypes, values); independent of Parquet encoding."""
        digest = hashlib.sha256()
        for name, frame in self.tables().items():
            digest.update(f"{name}={_frame_digest(frame)}\n".encode())
        return digest.hexdigest()

    def summary(self) -> dict[str, Any]:
        """Row counts and the shares the scenario controls, measured on the tables."""
        txn = self.transactions
        event = txn["event_timestamp"]
        late = (txn["ingested_at"] - event) > pd.Timedelta(hours=1)
        unique = txn["transaction_id"].nunique()
        return {
            "users": len(self.users), "merchants": len(self.merchants),
            "transaction_rows": len(txn), "transactions": int(unique),
            "duplicate_rows": int(len(txn) - unique),
            "fraud_rate": round(float(self.labels["is_fraud"].mean()), 5),
            "late_share": round(float(late.mean()), 5),
            "profile_rows": len(self.profiles),
            "first_event": event.min().isoformat(), "last_event": event.max().isoformat(),
        }

    def to_parquet(self, folder: str | os.PathLike[str]) -> dict[str, str]:
        """Write every table and ``world.json`` into ``folder``; return ``{file: sha256}``.

        Each file is written atomically; ``world.json`` (the manifest) is written last.
        """
        if folder is None or str(folder) == "":
            raise ValidationError("World.to_parquet: folder is empty.", fix="Pass a folder path.")
        path = Path(folder)
        if path.exists() and not path.is_dir():
            raise ValidationError(f"World.to_parquet: {str(path)!r} is a file, not a folder.",
                                  fix="Pass a folder path (it is created if missing).")
        path.mkdir(parents=True, exist_ok=True)
        hashes: dict[str, str] = {}
        for name, frame in self.tables().items():
            target = path / f"{name}.parquet"
            with atomic_path(target) as tmp:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                pq.write_table(table, tmp, compression="snappy", row_group_size=1 << 20)
            hashes[target.name] = sha256_file(target)
        atomic_write_json(path / MANIFEST, {
            "scenario": self.scenario.to_dict(), "seed": self.seed,
            "fingerprint": self.fingerprint(), "files": hashes,
            "pyarrow": pa.__version__,
        })
        return hashes


def load_world(folder: str | os.PathLike[str]) -> World:
    """Read a world written by ``World.to_parquet``, verifying every file's sha256 first."""
    if folder is None or str(folder) == "":
        raise ValidationError("load_world: folder is empty.", fix="Pass the folder given to to_parquet.")
    path = Path(folder)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise NotFoundError(f"load_world: {str(manifest_path)!r} does not exist.",
                            fix="Write the world first with world.to_parquet(folder).", path=str(path))
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    files = manifest.get("files", {})
    for name in TABLES:
        file = path / f"{name}.parquet"
        if not file.is_file():
            raise NotFoundError(f"load_world: {str(file)!r} is missing.",
                                fix="Rewrite the world with world.to_parquet(folder).", path=str(file))
        actual = sha256_file(file)
        if files.get(file.name) != actual:
            raise IntegrityError(
                f"load_world: {file.name} does not match its recorded sha256 "
                f"(expected {files.get(file.name)}, found {actual}).",
                fix="The file was edited or partly written: regenerate the world and write it again.",
                file=str(file), expected=files.get(file.name), actual=actual)
    tables = {name: pq.read_table(path / f"{name}.parquet").to_pandas() for name in TABLES}
    return World(scenario=Scenario.from_dict(manifest["scenario"]), seed=int(manifest["seed"]),
                 **tables)
