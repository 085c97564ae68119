"""Rolling aggregate features (counts, sums, means, min/max, distinct counts over day windows)
computed from an event-date-partitioned source, by full refresh or incrementally, with the
cost of every run reported.

Output grain: one row per (entity, day) as of the **end** of that day: ``event_timestamp``
is the next midnight UTC, each aggregate covers ``[day_end - window, day_end)``, and
``created_timestamp`` is the run's ``as_of``. A row exists when the entity has at least one
source row inside the spec's longest window. Empty windows give ``count = 0``,
``count_distinct = 0``, ``sum = 0.0`` and null ``mean``/``min``/``max``; nulls in the source
column are ignored. Sums are accumulated exactly in ``DECIMAL(38, 6)`` (source values rounded
to 1e-6), which makes a full refresh and an incremental update bit-identical.

Layout of a table folder: ``state.json`` (spec fingerprint, watermark on the processing-time
column, footer signature of every source partition, manifest of output files) and
``data/date=YYYY-MM-DD/part-gNNNNNN.parquet``; read it with :func:`read_aggregates`. One
writer per table folder at a time.

>>> from datetime import timedelta
>>> spec = AggregateSpec(name="user_txn", aggregates=[
...     RollingAggregate(name="amount_sum_24h", column="amount", function="sum",
...                      window=timedelta(hours=24), entity_key="user_id")])
>>> spec.max_window_days
1
"""

from ._compare import compare_full_vs_incremental, same_values
from ._runner import full_refresh, incremental_update, load_state, read_aggregates
from ._source import PartitionInfo, scan_partitions, write_partitioned
from ._spec import FUNCTIONS, AggregateSpec, RollingAggregate
from ._state import AggregateState, RunReport

__all__ = [
    "FUNCTIONS",
    "AggregateSpec",
    "AggregateState",
    "PartitionInfo",
    "RollingAggregate",
    "RunReport",
    "compare_full_vs_incremental",
    "full_refresh",
    "incremental_update",
    "load_state",
    "read_aggregates",
    "same_values",
    "scan_partitions",
    "write_partitioned",
]
