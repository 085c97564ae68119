"""Chapter 4, section 2 holds in every world: the retyped merchant_category silently changes the
serving scores by far more than the check's minimum, and the contract catches it.

Runs the chapter's story functions (not the notebook) on the notebook's default scale for a
fixed list of seeds, including the default 7 and the two seeds the chapter was built with
when its old AUC-based claim failed (123457, 9001).
"""

from __future__ import annotations

import numpy as np
import pytest

from mlops_kit.labs import ch04, ch04_ops as ops
from mlops_kit.registry import check_contract

SEEDS = (0, 1, 2, 3, 5, 7, 9001, 123457)
#: the notebook's ``assume["min_score_change"]``: the median relative score change the check requires
MIN_SCORE_CHANGE = 0.10
MARGIN = 1.5


@pytest.mark.parametrize("seed", SEEDS)
def test_retyped_category_silently_changes_scores_and_breaks_the_contract(seed):
    data = ch04.make_data(seed=seed, scale=1)
    scorer, _ = ch04.train_scorer(data, kind="logistic", seed=seed)
    changed = ops.upstream_payload(data, seed=seed, scale=1, change="retype", field="merchant_category")
    inputs = list(scorer.inputs)
    sig = ch04.model_signature(scorer.inputs)
    assert check_contract(sig, data.serving[inputs]).ok
    bad = check_contract(sig, changed[inputs])
    assert [(v.column, v.kind) for v in bad.violations] == [("merchant_category", "dtype_mismatch")]

    impact = ops.score_impact(scorer, data.serving, changed)
    assert impact["silent"] and "error" not in impact
    assert impact["median_relative_change"] >= MARGIN * MIN_SCORE_CHANGE, impact

    # independent reference: the integer codes match no vocabulary entry, so the model sees the honest
    # rows with every merchant_category one-hot column at 0
    matrix = scorer._matrix(data.serving)
    onehot = [c for c in matrix.columns if c.startswith("merchant_category=")]
    assert onehot and np.allclose(matrix[onehot].sum(axis=1), 1.0)  # every honest row has a known category
    matrix[onehot] = 0.0
    expected_after = scorer.estimator.predict_proba(matrix)[:, 1]
    before = scorer.predict(data.serving)
    np.testing.assert_allclose(scorer.predict(changed), expected_after, rtol=1e-12, atol=1e-15)
    assert impact["median_relative_change"] == pytest.approx(
        float(np.median(np.abs(expected_after - before) / before)), rel=1e-9)
    assert impact["rows_changed"] == int((np.abs(expected_after - before) > 1e-9).sum())
