"""Vectorized as-of window sums: "what was known at time t about the last w of events".

For query rows ``(g, t)`` and event rows ``(g_j, e_j, a_j, v_j)`` (group, event time,
time the event became available, value) ``window_sum`` returns

    sum of v_j over j with g_j == g, t - w <= e_j < t and a_j <= t

without a loop per row: two grouped prefix sums over event time give every event in the
window; a second pair removes the events still unavailable at ``t`` (each event j is
unavailable for ``t`` in ``[e_j + 1, min(a_j - 1, e_j + w)]``, an interval handled as
"started before t" minus "ended before t"). Times are int64 microseconds.
"""

from __future__ import annotations

import numpy as np


def grouped_prefix(g_points: np.ndarray, p_points: np.ndarray, values: np.ndarray,
                   g_query: np.ndarray, t_query: np.ndarray, *, inclusive: bool) -> np.ndarray:
    """Sum of ``values`` over points with the query's group and ``p < t`` (``p <= t`` if inclusive).

    ``values`` is 2-D (points x columns); the result is (queries x columns).
    """
    values = values.reshape(len(p_points), -1).astype(np.float64, copy=False)
    if len(p_points) == 0:
        return np.zeros((len(t_query), values.shape[1]))
    times, inverse = np.unique(np.concatenate([p_points, t_query]), return_inverse=True)
    stride = np.int64(len(times) + 1)
    point_key = g_points.astype(np.int64) * stride + inverse[: len(p_points)]
    query_key = g_query.astype(np.int64) * stride + inverse[len(p_points):]
    order = np.argsort(point_key, kind="stable")
    sorted_key = point_key[order]
    cumulative = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values[order], axis=0)])
    upto = np.searchsorted(sorted_key, query_key, side="right" if inclusive else "left")
    begin = np.searchsorted(sorted_key, g_query.astype(np.int64) * stride, side="left")
    return cumulative[upto] - cumulative[begin]


def window_sum(g: np.ndarray, event_us: np.ndarray, available_us: np.ndarray | None,
               values: np.ndarray, g_query: np.ndarray, t_query: np.ndarray,
               window_us: int) -> np.ndarray:
    """Sum of ``values`` of events in ``[t - window, t)`` of the query's group, known at ``t``.

    ``available_us=None`` ignores availability (every event counts as known at once: the
    leaky variant).
    """
    in_window = (grouped_prefix(g, event_us, values, g_query, t_query, inclusive=False)
                 - grouped_prefix(g, event_us, values, g_query, t_query - window_us, inclusive=False))
    if available_us is None:
        return in_window
    lo = event_us + 1
    hi = np.minimum(available_us - 1, event_us + window_us)
    valid = lo <= hi
    vals = values.reshape(len(event_us), -1)[valid]
    unknown = (grouped_prefix(g[valid], lo[valid], vals, g_query, t_query, inclusive=True)
               - grouped_prefix(g[valid], hi[valid], vals, g_query, t_query, inclusive=False))
    return in_window - unknown
