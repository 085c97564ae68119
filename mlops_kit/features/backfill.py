"""Backfills as controlled migrations, and the live version of a view (mixed into ``FeatureStore``).

``store.backfill(view, start, end, compute=f)`` registers a **shadow** version of the view
(the live definition with the next free version number; readers of ``"view:feature"`` keep
reading the live one), inherits the live files outside ``[start, end)``, then computes one
partition per UTC event date with ``f(partition_start, partition_end) -> DataFrame``. Each
partition is checked (exact columns, dtypes, rows inside the partition), sorted, written to
a fixed file name with fixed Parquet settings (same rows, same bytes; a re-run replaces)
and committed to the shadow's manifest; failures are retried with exponential backoff.
The shadow is then validated against the live version (``backfill_validate``) and the
result stored in a lineage record (``BackfillRecord``, table ``backfills``).

``promote_backfill(id)`` warms the shadow's online table up to the live watermark, then in
one transaction re-checks that the live version did not change and moves the live pointer
(table ``live_versions``): readers see all-old or all-new. ``rollback_promotion(view)``
moves it back. A crash at any step leaves the live pointer and the live files untouched.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from .._io import canonical_json
from .._time import ensure_utc
from ..errors import (BackfillError, ConflictError, IllegalTransitionError, MlopsKitError,
                      ValidationError)
from .backfill_promote import PromotionOps
from .backfill_records import BackfillRecord, BackfillThresholds, PartitionRun, ValidationReport, code_fingerprint
from .backfill_validate import prepare_labels, validation_checks
from .backfill_write import PARTITION_FILE, InjectedFailure, check_output, has_duplicates, write_partition
from .offline import partition_dir

__all__ = ["BackfillOps"]

_DAY_US = 86_400 * 1_000_000
_PROMOTABLE = ("validated", "validation_failed", "rolled_back")


def _us(value: datetime) -> int:
    return int(pd.Timestamp(value).value // 1000)


def _dt(micros: int) -> datetime:
    return pd.Timestamp(micros * 1000, tz="UTC").to_pydatetime()


def _outside(start_us: int, end_us: int) -> str:
    return f"(max_ts_us < {start_us} OR min_ts_us >= {end_us})"


class BackfillOps(PromotionOps):
    """Backfills, live versions and manifest maintenance of ``FeatureStore``."""

    # -- the backfill -------------------------------------------------------------------------
    def backfill(self, view: str, start: datetime, end: datetime, *,
                 compute: Callable[[datetime, datetime], pd.DataFrame],
                 labels: pd.DataFrame | None = None, thresholds: BackfillThresholds | None = None,
                 inputs: Mapping[str, Any] | None = None, parameters: Mapping[str, Any] | None = None,
                 max_attempts: int = 3, backoff: float = 1.0, sleep: Callable[[float], Any] = time.sleep,
                 inject_failures: Mapping[int, int] | None = None, sample_size: int = 1000, seed: int = 0,
                 label_as_of: str = "event_timestamp", label_time: str = "label_timestamp",
                 promote: bool = False, resume: str | None = None,
                 _pause: Callable[[str], None] | None = None) -> BackfillRecord:
        """Recompute ``[start, end)`` of ``view`` into a shadow version, then validate it.

        Parameters
        ----------
        view:
            The view name; the backfill's base is its live version.
        start, end:
            tz-aware UTC midnights; one partition per event date in ``[start, end)``.
        compute:
            ``compute(partition_start, partition_end) -> DataFrame`` with exactly the view's
            columns and only rows with ``partition_start <= timestamp < partition_end``.
        labels:
            Optional label frame (join keys, ``label_as_of``, ``label_time``) for the leakage
            check: a seeded sample of ``sample_size`` rows with as-of inside the window.
        thresholds:
            ``BackfillThresholds`` for the shadow-vs-live validation (default: no change).
        inputs, parameters:
            JSON-serializable facts recorded in the lineage (e.g. source snapshot ids).
        max_attempts, backoff, sleep:
            Each partition is tried up to ``max_attempts`` times, sleeping
            ``backoff * 2**(attempt-1)`` seconds (through ``sleep``) between attempts.
        inject_failures:
            ``{partition_index: n}``: that partition fails on its first ``n`` attempts (drills).
        promote:
            Promote at once when validation passed (raise ``QualityGateError`` when not).
        resume:
            The id of an unfinished backfill of the same view, window and code to continue
            into its shadow (every partition is recomputed; each re-run replaces its file).

        Returns
        -------
        BackfillRecord
            The lineage record (also stored; ``store.get_backfill(id)``).
        """
        name = self._view_name(view)
        base = self.get_feature_view(name)
        start_us, end_us = (_us(ensure_utc(v, name=f"backfill({n})")) for v, n in ((start, "start"), (end, "end")))
        if start_us % _DAY_US or end_us % _DAY_US or start_us >= end_us:
            raise ValidationError(f"backfill of {name!r}: start {start} and end {end} must be UTC midnights "
                                  "with start < end.", fix="Pass e.g. start=datetime(2024, 1, 1, tzinfo=UTC), "
                                  "end=datetime(2024, 1, 8, tzinfo=UTC).")
        if not callable(compute):
            raise ValidationError(f"backfill of {name!r}: compute must be callable, got {compute!r}.",
                                  fix="Pass compute=lambda start, end: frame_for(start, end).")
        if not isinstance(promote, bool):
            raise ValidationError(f"backfill: promote must be True or False, got {promote!r}.",
                                  fix="Pass promote=True to promote at once when validation passes.")
        n_parts = (end_us - start_us) // _DAY_US
        _check_int("max_attempts", max_attempts, 1)
        _check_int("sample_size", sample_size, 1)
        _check_int("seed", seed, 0)
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not backoff >= 0:
            raise ValidationError(f"backfill: backoff must be a number of seconds >= 0, got {backoff!r}.",
                                  fix="Use e.g. backoff=1.0.")
        if not callable(sleep):
            raise ValidationError("backfill: sleep must be callable.", fix="Pass e.g. sleep=time.sleep.")
        failures = dict(inject_failures or {})
        for k, n in failures.items():
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n_parts or isinstance(n, bool) \
                    or not isinstance(n, int) or n < 0:
                raise ValidationError(f"backfill: inject_failures entry {k!r}: {n!r} is invalid.",
                                      fix=f"Map partition indexes 0..{n_parts - 1} to failure counts >= 0.")
        thresholds = BackfillThresholds() if thresholds is None else thresholds
        if not isinstance(thresholds, BackfillThresholds):
            raise ValidationError(f"backfill: thresholds must be BackfillThresholds, got {thresholds!r}.",
                                  fix="Pass thresholds=BackfillThresholds(...).")
        facts = {}
        for label, value in (("inputs", inputs), ("parameters", parameters)):
            if value is not None and not isinstance(value, Mapping):
                raise ValidationError(f"backfill: {label} must be a dict, got {type(value).__name__}.",
                                      fix=f"Pass e.g. {label}={{'source': 'transactions@sha256:...'}}.")
            try:
                facts[label] = dict(value or {})
                canonical_json(facts[label])
            except (TypeError, ValueError) as exc:
                raise ValidationError(f"backfill: {label} are not JSON-serializable ({exc}).",
                                      fix="Record plain strings, numbers, lists and dicts.") from None
        key_dtypes = self._key_dtypes(base)
        prepared = None if labels is None else prepare_labels(base, labels, key_dtypes, label_as_of, label_time)
        fingerprint, code_name = code_fingerprint(compute)
        if labels is not None:
            facts["inputs"]["labels"] = {"rows": len(labels), "sha256": _frame_hash(labels)}
        settings = {"max_attempts": max_attempts, "backoff": float(backoff), "sample_size": sample_size,
                    "seed": seed, "label_as_of": label_as_of, "label_time": label_time,
                    "thresholds": thresholds.to_dict(), "inject_failures": {str(k): n for k, n in failures.items()}}
        if resume is not None:
            rec = self.get_backfill(resume)
            if (rec.view, rec.start, rec.end) != (name, _dt(start_us).isoformat(), _dt(end_us).isoformat()) \
                    or rec.code_fingerprint != fingerprint or rec.outcome not in ("running", "failed"):
                raise ConflictError(f"backfill {resume!r} cannot be resumed with these arguments (it is "
                                    f"{rec.outcome}, {rec.view} [{rec.start}, {rec.end}), "
                                    f"code {rec.code_fingerprint}).",
                                    fix="Resume an unfinished backfill with the same view, window and compute.")
            rec = self._event(rec, "resumed", outcome="running", error=None)
            self._save(rec)
        else:
            rec = self._register(base, start_us, end_us, n_parts, fingerprint, code_name, facts, settings)
        shadow = self.get_feature_view(name, rec.shadow_version)
        for k in range(n_parts):
            rec = self._run_partition(rec, k, shadow, start_us + k * _DAY_US, compute, failures.get(k, 0),
                                      max_attempts, float(backoff), sleep, key_dtypes, _pause)
        return self._finish(rec, prepared, thresholds, sample_size, seed, promote)

    def _register(self, base: Any, start_us: int, end_us: int, n_parts: int, fingerprint: str, code_name: str,
                  facts: dict[str, dict], settings: dict[str, Any]) -> BackfillRecord:
        """One transaction: shadow definition, live pin, inherited files, the lineage record."""
        name = base.name
        with self.meta.transaction() as con:
            top = con.execute("SELECT MAX(version) FROM feature_definitions WHERE kind='view' AND name=?",
                              (name,)).fetchone()[0]
            shadow = dataclasses.replace(base, version=top + 1)
            seq = con.execute("SELECT COALESCE(MAX(applied_seq), 0) + 1 FROM feature_definitions").fetchone()[0]
            con.execute("INSERT INTO feature_definitions VALUES (?,?,?,?,?,?)",
                        ("view", name, shadow.version, shadow.fingerprint, canonical_json(shadow.to_dict()), seq))
            con.execute("INSERT OR IGNORE INTO live_versions VALUES (?,?)", (name, base.version))
            con.execute("INSERT INTO offline_files SELECT view, ?, path, rows, min_ts_us, max_ts_us, ingest_id "
                        f"FROM offline_files WHERE view=? AND version=? AND {_outside(start_us, end_us)}",
                        (shadow.version, name, base.version))
            con.execute("INSERT INTO offline_key_dtypes SELECT view, ?, key, dtype FROM offline_key_dtypes "
                        "WHERE view=? AND version=?", (shadow.version, name, base.version))
            con.execute("INSERT INTO offline_ties SELECT view, ? FROM offline_ties WHERE view=? AND version=?",
                        (shadow.version, name, base.version))
            number = con.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM backfills").fetchone()[0]
            parts = tuple(PartitionRun(date=str(_dt(start_us + k * _DAY_US).date())) for k in range(n_parts))
            rec = BackfillRecord(backfill_id=f"bf-{number:06d}", view=name, base_version=base.version,
                                 shadow_version=shadow.version, start=_dt(start_us).isoformat(),
                                 end=_dt(end_us).isoformat(), code_fingerprint=fingerprint, code_name=code_name,
                                 inputs=facts["inputs"], parameters={**facts["parameters"], "settings": settings},
                                 partitions=parts)
            rec = self._event(rec, "started", detail={"shadow_version": shadow.version})
            con.execute("INSERT INTO backfills VALUES (?,?,?,?)",
                        (rec.backfill_id, name, number, canonical_json(rec.to_dict())))
        self._reload()
        return rec

    def _run_partition(self, rec: BackfillRecord, k: int, shadow: Any, lo_us: int, compute: Callable,
                       inject: int, max_attempts: int, backoff: float, sleep: Callable[[float], Any],
                       key_dtypes: dict[str, str], pause: Callable[[str], None] | None) -> BackfillRecord:
        part = rec.partitions[k]
        lo, hi = _dt(lo_us), _dt(lo_us + _DAY_US)
        errors = list(part.errors)
        for attempt in range(1, max_attempts + 1):
            try:
                if attempt <= inject:
                    raise InjectedFailure(f"injected transient failure (attempt {attempt} of partition {k})")
                out = compute(lo, hi)
            except Exception as exc:  # a user function: any failure may be transient
                errors.append(f"attempt {attempt}: {type(exc).__name__}: {exc}")
                status = "failed" if attempt == max_attempts else "retrying"
                part = dataclasses.replace(part, attempts=part.attempts + 1, status=status, errors=tuple(errors))
                rec = _with_part(rec, k, part)
                if attempt == max_attempts:
                    message = (f"backfill {rec.backfill_id} of {rec.view!r}: partition {part.date} failed "
                               f"{max_attempts} attempt(s); last error: {type(exc).__name__}: {exc}")
                    self._save(self._event(dataclasses.replace(rec, outcome="failed", error=message), "failed",
                                           detail={"partition": part.date}))
                    raise BackfillError(message + ". The live version is untouched.",
                                        fix="Fix the cause, then resume: "
                                        f"store.backfill(..., resume={rec.backfill_id!r}).",
                                        backfill_id=rec.backfill_id, partition=part.date) from exc
                rec = self._save(self._event(rec, "retry", detail={"partition": part.date, "attempt": attempt}))
                sleep(backoff * 2 ** (attempt - 1))
                continue
            part = dataclasses.replace(part, attempts=part.attempts + 1)
            try:
                table, dtypes = check_output(shadow, out, lo, hi, key_dtypes)
            except MlopsKitError as exc:
                part = dataclasses.replace(part, status="invalid", errors=tuple(errors + [str(exc)]))
                failed = dataclasses.replace(_with_part(rec, k, part), outcome="failed", error=str(exc))
                self._save(self._event(failed, "failed", detail={"partition": part.date}))
                raise
            break
        target = partition_dir(self.workspace.offline_dir, shadow, part.date) / PARTITION_FILE
        rel = str(target.relative_to(self.workspace.offline_dir))
        digest = None
        if table.num_rows:
            digest = write_partition(table, target, self.workspace.tmp_dir, pause, f"partition-staged:{k}")
        if pause is not None:
            pause(f"partition-written:{k}")
        part = dataclasses.replace(part, status="done", rows=table.num_rows, sha256=digest,
                                   path=rel if table.num_rows else None, errors=tuple(errors))
        rec = _with_part(rec, k, part)
        ties = has_duplicates(table, shadow)
        with self.meta.transaction() as con:
            con.execute("DELETE FROM offline_files WHERE view=? AND version=? AND path=?",
                        (shadow.name, shadow.version, rel))
            if table.num_rows:
                ingest_id = self.meta.take_ingest_id(con)
                con.execute("INSERT INTO offline_files VALUES (?,?,?,?,?,?,?)",
                            (shadow.name, shadow.version, rel, table.num_rows, lo_us, lo_us + _DAY_US - 1, ingest_id))
                self.meta.record_digests(con, [(rel, target.stat().st_size, digest)])
            con.executemany("INSERT OR IGNORE INTO offline_key_dtypes VALUES (?,?,?,?)",
                            [(shadow.name, shadow.version, key, d) for key, d in dtypes.items()])
            if ties:
                con.execute("INSERT OR IGNORE INTO offline_ties VALUES (?,?)", (shadow.name, shadow.version))
            self._save(rec, con)
        if not table.num_rows:
            target.unlink(missing_ok=True)
        if pause is not None:
            pause(f"partition-committed:{k}")
        return rec

    def _finish(self, rec: BackfillRecord, labels: pd.DataFrame | None, thresholds: BackfillThresholds,
                sample_size: int, seed: int, promote: bool) -> BackfillRecord:
        rec = self._validate(rec, labels, thresholds, sample_size, seed)
        if promote:
            return self.promote_backfill(rec.backfill_id)
        return rec

    def _validate(self, rec: BackfillRecord, labels: pd.DataFrame | None, thresholds: BackfillThresholds,
                  sample_size: int, seed: int) -> BackfillRecord:
        root = self.workspace.offline_dir
        start_us, end_us = _us(datetime.fromisoformat(rec.start)), _us(datetime.fromisoformat(rec.end))
        shadow = self.get_feature_view(rec.view, rec.shadow_version)
        live_rel = self._window_files(rec.view, rec.base_version, start_us, end_us)
        shadow_rel = self._window_files(rec.view, rec.shadow_version, start_us, end_us)
        shadow_all = [root / p for p, *_ in self.meta.committed_files(rec.view, rec.shadow_version)]
        checks = validation_checks(self.duckdb, shadow, live_files=[root / p for p in live_rel],
                                   shadow_files=[root / p for p in shadow_rel], shadow_all=shadow_all,
                                   key_dtypes=self._key_dtypes(shadow), start_us=start_us, end_us=end_us,
                                   thresholds=thresholds, labels=labels, sample_size=sample_size, seed=seed)
        report = ValidationReport(view=rec.view, live_version=rec.base_version, shadow_version=rec.shadow_version,
                                  checks=tuple(checks), live_files=tuple(live_rel))
        outcome = "validated" if report.passed else "validation_failed"
        rec = self._event(rec, outcome, outcome=outcome, validation=report.to_dict(), detail=report.summary())
        return self._save(rec)

    def _window_files(self, view: str, version: int, start_us: int, end_us: int) -> list[str]:
        return [p for p, _, lo, hi in self.meta.committed_files(view, version)
                if not (hi < start_us or lo >= end_us)]

    def validate_backfill(self, backfill_id: str, *, labels: pd.DataFrame | None = None,
                          thresholds: BackfillThresholds | None = None, sample_size: int | None = None,
                          seed: int | None = None) -> BackfillRecord:
        """Validate a computed backfill that is not live again (e.g. with other thresholds or labels).

        Defaults (thresholds, sample size, seed, label columns) are the backfill's own.
        """
        rec = self.get_backfill(backfill_id)
        allowed = ["validated", "validation_failed", "rolled_back"]
        if rec.outcome not in allowed:
            raise IllegalTransitionError(f"backfill {backfill_id!r} is {rec.outcome}; only a computed backfill "
                                         "that is not live can be validated.",
                                         fix="Run or resume the backfill first (a live one: roll it back first).",
                                         allowed_from=allowed)
        cfg = rec.parameters["settings"]
        thresholds = BackfillThresholds.from_dict(cfg["thresholds"]) if thresholds is None else thresholds
        if not isinstance(thresholds, BackfillThresholds):
            raise ValidationError("validate_backfill: thresholds must be BackfillThresholds.",
                                  fix="Pass thresholds=BackfillThresholds(...).")
        base = self.get_feature_view(rec.view, rec.base_version)
        prepared = None if labels is None else prepare_labels(base, labels, self._key_dtypes(base),
                                                              cfg["label_as_of"], cfg["label_time"])
        size = cfg["sample_size"] if sample_size is None else sample_size
        _check_int("sample_size", size, 1)
        return self._validate(rec, prepared, thresholds, size, cfg["seed"] if seed is None else seed)


def _with_part(rec: BackfillRecord, k: int, part: PartitionRun) -> BackfillRecord:
    return dataclasses.replace(rec, partitions=rec.partitions[:k] + (part,) + rec.partitions[k + 1:])


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"backfill: {name} must be an integer >= {minimum}, got {value!r}.",
                              fix=f"Pass e.g. {name}={max(minimum, 1)}.")


def _frame_hash(frame: pd.DataFrame) -> str:
    import hashlib

    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return "sha256:" + hashlib.sha256(hashed.tobytes() + repr(list(frame.columns)).encode()).hexdigest()
