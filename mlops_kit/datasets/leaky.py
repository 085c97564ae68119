"""The classic leaky feature tables, kept for teaching (never train a real model on them).

Each mirrors an honest table of ``pipelines`` with the same columns, so a feature view can
point at either and the only difference is one dropped condition:

- ``leaky_merchant_risk``: the merchant fraud rate counts every label, including
  chargebacks that had not arrived yet (``label_timestamp`` ignored);
- ``current_profile_features``: today's profile (the latest SCD2 row) stamped at the
  user's first ``valid_from``, as if the current account status had always held; its
  ``created_timestamp`` is the export time, so a join with
  ``filter_by_created_timestamp=True`` drops it (and one without warns);
- ``naive_user_transaction_stats``: user activity counted by event time only, including
  transactions the scoring service had not ingested yet (late events).
"""

from __future__ import annotations

import pandas as pd

from ..errors import ValidationError
from .pipelines import PROFILE_FEATURES, merchant_risk_frame, user_stats_frame
from .world import World

__all__ = ["leaky_merchant_risk", "current_profile_features", "naive_user_transaction_stats"]


def leaky_merchant_risk(world: World) -> pd.DataFrame:
    """Daily merchant risk computed from all labels, known or not (leaks the future).

    Same columns as ``merchant_risk``.
    """
    return merchant_risk_frame(world, honest=False)


def naive_user_transaction_stats(world: World) -> pd.DataFrame:
    """User activity by event time, ignoring ``ingested_at`` (late events leak in).

    Same columns as ``user_transaction_stats``.
    """
    return user_stats_frame(world, respect_ingestion=False)


def current_profile_features(world: World) -> pd.DataFrame:
    """The latest profile of each user applied to all of history (the "current" snapshot).

    Columns as ``user_profile_features``: ``event_timestamp`` is the user's first
    ``valid_from``; ``created_timestamp`` is the snapshot time (the last ``valid_from`` in
    the table), i.e. when those values were actually known.
    """
    if not isinstance(world, World):
        raise ValidationError(f"expected a World, got {type(world).__name__}.",
                              fix="Pass the result of generate_world(...) or load_world(...).")
    profiles = world.profiles.sort_values(["user_id", "valid_from"], kind="stable")
    first = profiles.groupby("user_id", sort=True)["valid_from"].min()
    latest = profiles.groupby("user_id", sort=True).tail(1).set_index("user_id").sort_index()
    frame = pd.DataFrame({"user_id": latest.index.to_numpy(), "event_timestamp": first.to_numpy()})
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    for name in PROFILE_FEATURES:
        frame[name] = latest[name].to_numpy()
    frame["created_timestamp"] = profiles["valid_from"].max()
    frame["created_timestamp"] = frame["created_timestamp"].astype("datetime64[us, UTC]")
    return frame.sort_values(["event_timestamp", "user_id"], kind="stable").reset_index(drop=True)
