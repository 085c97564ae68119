"""Chapter 4's story holds in every world.

Section 2: the retyped merchant_category silently moves the scores of far more requests than the
check's minimum share, and the contract catches it. Section 5: v2 (the baseline's inputs plus the
``user_transaction_stats`` view) beats the v1 baseline on the same evaluation set by well over
the gate's minimum gain and loses no channel beyond the segment tolerance, while the lite v3
(the baseline without the profile view) does not beat v1, so the gate blocks v3 and passes v2.

Runs the chapter's story functions (not the notebook) on the notebook's default scale for a
fixed list of seeds, including the default 7 and the two seeds the chapter was built with
when its old claims failed (123457, 9001).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata

from mlops_kit.datasets import PROFILE_FEATURES, USER_STATS_FEATURES
from mlops_kit.labs import ch04, ch04_ops as ops
from mlops_kit.registry import check_contract

SEEDS = (0, 1, 2, 3, 5, 7, 9001, 123457)
GATE_SEEDS = (*range(10), 9001, 123457, 1758596337)   # the last: the lowest v2 AUC measured (0.690)
#: the notebook's ``assume["min_score_change"]`` (a request "moved": its score is more than 10 % away from the
#: reviewed model's) and ``assume["min_share_moved"]`` (the share of requests that must move)
MIN_SCORE_CHANGE, MIN_SHARE_MOVED = 0.10, 0.10
#: measured on chapter 4's world (twice the course world): 0.217 for the default seed 7, at least 0.38 for the
#: others; the median request moves by only 2-5 % in seeds 5 and 7, where the common categories carry little weight
MARGIN = 2.0
#: the notebook's ``assume["min_auc"]`` (a floor that refuses a broken model: v2's AUC ranges 0.69..0.88
#: over worlds), ``assume["min_auc_gain"]`` and ``assume["segment_tolerance"]``
MIN_AUC = 0.65
MIN_AUC_GAIN = 0.005
SEGMENT_TOLERANCE = 0.04


def _auc(labels, scores):
    """Mann-Whitney AUC from average ranks (ties count one half), independent of sklearn."""
    ranks = rankdata(scores)
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@pytest.mark.parametrize("seed", SEEDS)
def test_retyped_category_silently_changes_scores_and_breaks_the_contract(seed):
    data = ch04.make_data(seed=seed, scale=1)
    scorer, _ = ch04.train_scorer(data, kind="logistic", inputs=ch04.BASELINE_INPUTS, seed=seed)
    changed = ops.upstream_payload(data, seed=seed, scale=1, change="retype", field="merchant_category")
    inputs = list(scorer.inputs)
    sig = ch04.model_signature(scorer.inputs)
    assert check_contract(sig, data.serving[inputs]).ok
    bad = check_contract(sig, changed[inputs])
    assert [(v.column, v.kind) for v in bad.violations] == [("merchant_category", "dtype_mismatch")]

    impact = ops.score_impact(scorer, data.serving, changed, moved_by=MIN_SCORE_CHANGE)
    assert impact["silent"] and "error" not in impact
    assert impact["share_moved"] >= MARGIN * MIN_SHARE_MOVED, impact

    # independent reference: the integer codes match no vocabulary entry, so the model sees the honest
    # rows with every merchant_category one-hot column at 0
    matrix = scorer._matrix(data.serving)
    onehot = [c for c in matrix.columns if c.startswith("merchant_category=")]
    assert onehot and np.allclose(matrix[onehot].sum(axis=1), 1.0)  # every honest row has a known category
    matrix[onehot] = 0.0
    expected_after = scorer.estimator.predict_proba(matrix)[:, 1]
    before = scorer.predict(data.serving)
    np.testing.assert_allclose(scorer.predict(changed), expected_after, rtol=1e-12, atol=1e-15)
    relative = np.abs(expected_after - before) / before
    assert impact["median_relative_change"] == pytest.approx(float(np.median(relative)), rel=1e-9)
    assert impact["share_moved"] == pytest.approx(float(np.mean(relative > MIN_SCORE_CHANGE)), abs=1e-12)
    assert impact["rows_changed"] == int((np.abs(expected_after - before) > 1e-9).sum())


@pytest.mark.parametrize("seed", GATE_SEEDS)
def test_v2_beats_the_baseline_in_every_channel_and_the_lite_v3_does_not(seed):
    data = ch04.make_data(seed=seed, scale=1)
    v1, r1 = ch04.train_scorer(data, kind="logistic", inputs=ch04.BASELINE_INPUTS, seed=seed)
    v2, r2 = ch04.train_scorer(data, kind="logistic", seed=seed)
    lite = tuple(c for c in v1.inputs if c not in PROFILE_FEATURES)
    v3, r3 = ch04.train_scorer(data, kind="logistic", inputs=lite, seed=seed)
    assert set(v1.inputs) < set(v2.inputs) and set(v2.inputs) - set(v1.inputs) == set(USER_STATS_FEATURES)

    labels = data.eval["is_fraud"].astype(int).to_numpy()
    channel = data.eval["channel"].astype(str).to_numpy()
    scores = {k: m.predict(data.eval) for k, m in (("v1", v1), ("v2", v2), ("v3", v3))}
    for key, report in (("v1", r1), ("v2", r2), ("v3", r3)):
        assert report["auc"] == pytest.approx(_auc(labels, scores[key]), abs=1e-12)
    assert r2["auc"] >= MIN_AUC + 0.02, (seed, r2["auc"])  # v2 clears the floor with margin
    gain = r2["auc"] - r1["auc"]
    assert gain >= 2 * MIN_AUC_GAIN, (seed, gain)           # the gate passes v2 with margin
    for name, segment in r1["segment_auc"].items():
        mask = channel == name.split("=", 1)[1]
        drop = _auc(labels[mask], scores["v1"][mask]) - _auc(labels[mask], scores["v2"][mask])
        assert drop == pytest.approx(segment["auc"] - r2["segment_auc"][name]["auc"], abs=1e-12)
        assert drop <= SEGMENT_TOLERANCE / 2, (seed, name, drop)   # no channel near the tolerance
    assert r3["auc"] - r1["auc"] <= MIN_AUC_GAIN - 0.005, (seed, r3["auc"] - r1["auc"])  # the gate blocks v3
