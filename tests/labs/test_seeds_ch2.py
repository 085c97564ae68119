"""Chapter 2's leakage story holds in every world, not only the default seed.

Check 3.1 claims: the latest-value join wins offline, and its offline AUC overstates its
production AUC (honest features at serving time) by far more than the point-in-time model's
does. Measured over seeds 0..9, 123457 and 9001 at scale 1 (the notebook's world), the smallest
observed values were: offline gap 0.057 (seed 9001), leaky overstatement 0.128 (seed 123457) and
excess overstatement 0.082 (seed 8), against the notebook's thresholds 0.03, 0.1 and 0.05. The
test asserts each with a margin of at least 0.01 above the threshold, on the runs' own numbers.
"""

from __future__ import annotations

import warnings

import pytest

from mlops_kit.features import FeatureStore
from mlops_kit.labs import ch02

SEEDS = [0, 1, 3, 5, 7, 8, 123457, 9001]
THRESHOLDS = {"offline_gap": 0.03, "leaky_overstatement": 0.1, "excess": 0.05}
MARGIN = 0.01


def _story(seed: int, root) -> tuple[dict[str, float], dict[str, int], dict[str, int]]:
    world = ch02.make_world(seed=seed)
    store = FeatureStore(root)
    ch02.ingest_training_views(store, world)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pit = ch02.pit_training_set(store, world, filter_by_created_timestamp=True)
        latest = ch02.latest_value_join(store, world)
    aucs = ch02.evaluate_variants({"latest value join": latest, "point-in-time join": pit}, pit,
                                  seed=seed).set_index("training_set")
    leaky, honest = aucs.loc["latest value join"], aucs.loc["point-in-time join"]
    # the gap column is offline minus production; recompute it from the two AUCs independently
    leaky_over = float(leaky["offline_auc"]) - float(leaky["production_auc"])
    honest_over = float(honest["offline_auc"]) - float(honest["production_auc"])
    assert abs(leaky_over - float(leaky["gap"])) < 1e-3 and abs(honest_over - float(honest["gap"])) < 1e-3
    measured = {"offline_gap": float(leaky["offline_auc"] - honest["offline_auc"]),
                "leaky_overstatement": leaky_over, "excess": leaky_over - honest_over}
    return measured, ch02.leakage_violations(latest), ch02.leakage_violations(pit)


@pytest.mark.parametrize("seed", SEEDS)
def test_leaky_join_story_holds_with_margin(seed, tmp_path):
    measured, leaky_violations, pit_violations = _story(seed, tmp_path / "store")
    # the cause is a real leak: the latest join uses rows stamped after the payment, PIT none
    assert leaky_violations["rows"] > 0 and pit_violations["rows"] == 0
    for name, threshold in THRESHOLDS.items():
        assert measured[name] > threshold + MARGIN, (seed, name, round(measured[name], 4))
