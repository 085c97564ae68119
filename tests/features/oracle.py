"""An independent brute-force point-in-time join, written from the specification only.

It shares no code with ``mlops_kit.features``: plain Python loops over plain tuples.

Specification (Feast's semantics): for an entity row with key ``k`` and time ``T``, the
candidates of a view are its rows with key ``k``, ``ts <= T`` and, when the TTL is set
and positive, ``ts >= T - ttl``; with ``filter_created`` also ``created <= T``. The winner
has the greatest ``(ts, created, ingest position)``; its values are returned as they are
(a null stays null). No candidate: every value is None.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def brute_force_row(rows, key, t: datetime, ttl: timedelta | None, filter_created: bool):
    """Return ``(winner_row_or_None)`` for one entity row.

    ``rows`` is a list of dicts with ``key`` (tuple), ``ts``, ``created`` (datetime or
    None), ``pos`` (ingest position: later ingested is larger) and ``values`` (dict).
    """
    best = None
    for row in rows:
        if row["key"] != key:
            continue
        if row["ts"] > t:
            continue
        if ttl is not None and ttl > timedelta(0) and row["ts"] < t - ttl:
            continue
        if filter_created and row["created"] is not None and row["created"] > t:
            continue
        if best is None or _rank(row) > _rank(best):
            best = row
    return best


def _rank(row):
    created = row["created"]
    return (row["ts"], created if created is not None else datetime.min.replace(tzinfo=row["ts"].tzinfo),
            row["pos"])


def brute_force_join(entity_rows, rows, ttl, features, filter_created):
    """Values per entity row (list of dicts) and the number of rows whose winner is late."""
    out = []
    late = []
    for key, t in entity_rows:
        best = brute_force_row(rows, key, t, ttl, filter_created)
        if best is None:
            out.append({f: None for f in features})
            late.append(False)
        else:
            out.append({f: best["values"][f] for f in features})
            late.append(best["created"] is not None and best["created"] > t)
    return out, late
