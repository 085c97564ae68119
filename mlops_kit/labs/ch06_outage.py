"""Chapter 6 lab: the online-store outage drill, simulated (SQLite) or a real redis-server stop.

:func:`outage_drill` plans the drill for the chapter's ``online_store``:

- ``"sqlite"``: the simulator injects :class:`~mlops_kit.rollout.OnlineStoreOutage` (95 % of
  reads fail for three hours) over the daily-job source, exactly as before;
- a Redis URL: nothing is injected. :class:`ServerOutageSource` wraps the daily-job source and,
  at the first read at or after the fault start, records probe reads and stops the real
  ``redis-server`` (:class:`~mlops_kit.features.online.RedisServerControl`); every read until
  the fault end then fails for real (the adapter serves those batches as missing features, so the
  fallback guardrail fires). At the first read at or after the fault end it restarts the server
  with the same port and settings, re-materializes every view up to its watermark (a server
  without persistence comes back empty: the runbook step) and reads the probe keys again.

:meth:`OutageDrill.finish` returns what ``drill_outage.json`` gains under Redis (``store_outage``):
what the scoring path did (fallback counts, unserved requests, unavailable reads), the outage
and restore times in simulated time, whether the reads after recovery equal those before, and
a ``measured`` block (wall-clock seconds, process ids and run ids: real but not reproducible).
:meth:`OutageDrill.actions` adds the corrective action CA-O4 (store restored, reads equal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from .._time import UTC
from ..errors import ValidationError
from ..features.config import parse_online_store
from ..features.online import RedisServerControl
from ..rollout import CorrectiveAction
from .ch06 import feature_refs
from .ch06_ops import DailyJobSource, drill_fault

__all__ = ["PROBE_KEYS", "ServerOutageSource", "OutageDrill", "outage_drill"]

#: users whose online reads are compared before the outage and after recovery
PROBE_KEYS = 300
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ServerOutageSource:
    """A FeatureSource that stops the real server during [``start``, ``end``) of simulated time.

    Parameters
    ----------
    inner: the :class:`~mlops_kit.labs.ch06_ops.DailyJobSource` serving the drill.
    control: the :class:`RedisServerControl` of the store's Redis URL (checked already).
    start, end: the outage window; probe_keys: user ids read before and after.
    timer: the wall-clock timer of the ``measured`` fields.
    """

    def __init__(self, inner: DailyJobSource, control: RedisServerControl, *, start: datetime, end: datetime,
                 probe_keys: np.ndarray, timer: Callable[[], float] = time.perf_counter) -> None:
        self.inner, self.control, self.timer = inner, control, timer
        self.columns = inner.columns
        self.start, self.end = pd.Timestamp(start), pd.Timestamp(end)
        self.probe_keys = np.asarray(probe_keys, dtype=np.int64)
        self.phase = "before"
        self.record: dict[str, Any] = {}
        self.measured: dict[str, Any] = {}
        self.before: pd.DataFrame | None = None
        self.after: pd.DataFrame | None = None

    def _probe(self) -> pd.DataFrame:
        rows = [{"user_id": int(k)} for k in self.probe_keys]
        out = self.inner.store.get_online_features(features=feature_refs(), entity_rows=rows,
                                                   at=self.start.to_pydatetime(), purpose="outage-drill")
        return pd.DataFrame(out)

    def _go_down(self, at: pd.Timestamp) -> None:
        self.before = self._probe()
        stop = self.control.stop()
        self.record.update(stopped_at=at.isoformat(), keys_before_stop=stop["keys"], persistent=stop["persistent"])
        self.measured.update(stop_s=stop["stop_s"], pid_before=stop["pid"], run_id_before=stop["run_id"])
        self.phase = "down"

    def _recover(self, at: pd.Timestamp) -> None:
        started = self.control.start()
        began = self.timer()
        written = 0
        store = self.inner.store
        for name in dict.fromkeys(v.name for v in store.list_feature_views()):
            mark = store.watermark(name)
            if mark is not None:
                written += int(store.materialize(_EPOCH, mark, views=[name]).views[name].rows_written)
        self.measured.update(restart_s=started["start_s"], rematerialize_s=round(self.timer() - began, 4),
                             pid_after=started["pid"], run_id_after=started["run_id"])
        self.after = self._probe()
        self.record.update(restarted_at=at.isoformat(), keys_after_restart=started["keys"],
                           rows_rematerialized=written, server_replaced=started["run_id"] != self.measured["run_id_before"],
                           reads_after_recovery_equal=bool(self.before.equals(self.after)))
        self.phase = "after"

    def fetch(self, keys: np.ndarray, at: datetime) -> tuple[pd.DataFrame, np.ndarray]:
        """Stop or restart the server when ``at`` crosses the window, then read through the daily job."""
        t = pd.Timestamp(at)
        if self.phase == "before" and t >= self.start:
            self._go_down(t)
        if self.phase == "down" and t >= self.end:
            self._recover(t)
        return self.inner.fetch(keys, at)


@dataclass
class OutageDrill:
    """The planned drill: ``fault`` (the window, for the write-up), ``faults`` (what the simulator
    injects), ``source`` (what it reads), ``mode`` and the root cause text of the postmortem."""

    mode: str
    fault: Any
    faults: list[Any]
    source: Any
    root_cause: str
    server: ServerOutageSource | None = None
    evidence: dict[str, Any] | None = None

    def finish(self, result: Any) -> dict[str, Any] | None:
        """After the run: restore a server still down, and return ``store_outage`` for ``drill_outage.json``
        (None for the simulated drill, whose artifact stays as it was)."""
        if self.server is None:
            return None
        if self.server.phase == "down":   # the traffic ended inside the window: restore now
            self.server._recover(pd.Timestamp(self.fault.end))
        req = result.requests
        t = req["event_timestamp"]
        window = req[(t >= pd.Timestamp(self.fault.start)) & (t < pd.Timestamp(self.fault.end))]
        unavailable = self.server.inner.inner.unavailable
        serving = {"requests_in_outage": int(len(window)), "served_by_fallback": int((window["arm"] == "fallback").sum()),
                   "missing_features": int(window["missing_feature"].sum()),
                   "unserved": int((window["error"] | window["score"].isna()).sum()),
                   "unavailable_reads": len(unavailable), "unavailable_keys": int(sum(u["keys"] for u in unavailable)),
                   "run_status": str(result.status)}
        self.evidence = {"mode": self.mode, "online_store": "redis", "stop": "SHUTDOWN NOSAVE",
                         "probe_keys": int(len(self.server.probe_keys)), **self.server.record, "serving": serving,
                         "measured": dict(self.server.measured)}
        return self.evidence

    def actions(self) -> list[CorrectiveAction]:
        """CA-O4 under Redis (the store restored for real, reads equal, every request answered); none when simulated."""
        ev = self.evidence
        if ev is None:
            return []
        s = ev["serving"]
        return [CorrectiveAction(
            id="CA-O4", action="restart the store and re-materialize before ending the fallback", owner="platform",
            spec="redis-server stopped and replaced (new run_id); reads after re-materialization equal the reads "
                 "before the outage; every request of the outage answered; store failures seen by serving",
            check=lambda: bool(ev.get("server_replaced")) and bool(ev.get("reads_after_recovery_equal"))
            and s["unserved"] == 0 and s["unavailable_reads"] > 0)]


def outage_drill(source: DailyJobSource, online_store: str, traffic: pd.DataFrame, *, start_h: float = 18,
                 hours: float = 3, share: float = 0.95, timer: Callable[[], float] = time.perf_counter) -> OutageDrill:
    """Plan the outage drill on ``source`` for the chapter's ``online_store`` (see the module doc).

    ``traffic`` is the outage window's requests (its first :data:`PROBE_KEYS` users, sorted, are
    the probe keys). A Redis URL is checked before anything runs: a server that is not on
    loopback or cannot be restarted from here is refused (``ValidationError``).
    """
    cfg = parse_online_store(online_store, "outage_drill(online_store)")
    kind = source.store.describe()["online_store"]["kind"]
    if cfg.kind != kind:
        raise ValidationError(f"outage_drill: online_store is {cfg.kind!r} but the store serves from {kind!r}.",
                              fix="Pass the online_store the chapter's store was built with.")
    if cfg.kind != "redis":
        fault = drill_fault("outage", "outage", magnitude=share, start_h=start_h, hours=hours)
        return OutageDrill(mode="simulated", fault=fault, faults=[fault], source=source,
                           root_cause="the online store returned no features for 95 % of reads for three hours")
    control = RedisServerControl(online_store, timer=timer)
    control.check()
    fault = drill_fault("outage", "outage", magnitude=1.0, start_h=start_h, hours=hours)   # a stopped server fails every read
    keys = np.sort(pd.unique(traffic["key"].to_numpy(dtype=np.int64)))[:PROBE_KEYS]
    server = ServerOutageSource(source, control, start=fault.start, end=fault.end, probe_keys=keys, timer=timer)
    return OutageDrill(mode="redis-server stopped", fault=fault, faults=[], source=server, server=server,
                       root_cause=f"the online store's redis-server was down for {timedelta(hours=hours)} "
                                  "(stopped with SHUTDOWN NOSAVE, restarted empty, re-materialized)")
