"""Drift statistics against hand-computed cases, separately written loops and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2 as chi2_dist
from scipy.stats import ks_2samp

from mlops_kit.errors import ValidationError
from mlops_kit.quality import (chi_square, js_distance, ks_test, psi, psi_detail, topk_shift,
                               unknown_rate, wasserstein_normalized)


# -- an independent PSI, written as plain loops from the definition ---------------------------
def quantile_linear(sorted_values, p):
    """numpy's default 'linear' quantile (Hyndman-Fan type 7) by hand.

    Interpolated from the upper neighbour when the fraction is >= 0.5, as numpy does, so that
    edges agree to the last bit (a value lying exactly on an edge must land in the same bin).
    """
    h = (len(sorted_values) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    t = h - lo
    a, b = sorted_values[lo], sorted_values[hi]
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def psi_loop(reference, current, bins=10):
    ref = sorted(float(x) for x in reference)
    edges = []
    for i in range(1, bins):
        e = quantile_linear(ref, i / bins)
        if e not in edges:
            edges.append(e)
    edges.sort()

    def shares(values):
        counts = [0] * (len(edges) + 1)
        for x in values:
            k = 0
            for e in edges:
                if x >= e:  # a value equal to an edge belongs to the bin on its right
                    k += 1
            counts[k] += 1
        return [c / len(values) for c in counts]

    total = 0.0
    for r, c in zip(shares(reference), shares(current)):
        r = r if r > 0 else 0.0001
        c = c if c > 0 else 0.0001
        total += (c - r) * math.log(c / r)
    return total


def test_psi_hand_computed_two_bins():
    ref = list(range(1, 11))                      # median edge 5.5 -> shares 0.5 / 0.5
    cur = [1, 2, 3, 6, 7, 8, 9, 10, 11, 12]       # shares 0.3 / 0.7
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    assert psi(ref, cur, bins=2) == pytest.approx(expected, abs=1e-12)
    detail = psi_detail(ref, cur, bins=2)
    assert (detail.n_reference, detail.n_current, detail.bins, detail.edges) == (10, 10, 2, (5.5,))


def test_psi_value_on_an_edge_goes_right_and_zero_share_is_floored():
    ref = list(range(11))                         # bins=2: edge exactly 5.0
    cur = [5, 5, 5, 5]                            # all on the edge -> right bin
    left, right = 5 / 11, 6 / 11
    expected = (0.0001 - left) * math.log(0.0001 / left) + (1 - right) * math.log(1 / right)
    assert psi(ref, cur, bins=2) == pytest.approx(expected, abs=1e-12)
    assert psi_detail(ref, cur, bins=2).current_shares == (0.0, 1.0)


def test_psi_duplicate_edges_are_removed():
    ref = [0.0] * 50 + [1.0] * 50                 # all deciles are 0 or 1 (and 0.5 at the median)
    detail = psi_detail(ref, [0.0, 1.0, 1.0], bins=10)
    assert detail.edges == tuple(sorted(set(np.quantile(ref, np.arange(1, 10) / 10))))
    assert detail.bins == len(detail.edges) + 1
    assert detail.value == pytest.approx(psi_loop(ref, [0.0, 1.0, 1.0]))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=60)


@given(samples, samples, st.integers(min_value=2, max_value=12))
def test_psi_matches_the_loop_and_is_non_negative(ref, cur, bins):
    value = psi(ref, cur, bins=bins)
    assert value == pytest.approx(psi_loop(ref, cur, bins), rel=1e-9, abs=1e-9)
    assert value >= -1e-12


@given(samples, st.integers(min_value=2, max_value=12))
def test_psi_of_identical_samples_is_zero(ref, bins):
    assert psi(ref, list(ref), bins=bins) == pytest.approx(0.0, abs=1e-12)


@given(samples, samples)
def test_psi_is_invariant_to_input_order(ref, cur):
    assert psi(ref, cur) == pytest.approx(psi(ref[::-1], cur[::-1]), abs=1e-12)


def ks_loop(a, b):
    best = 0.0
    for x in sorted(set(a) | set(b)):
        fa = sum(v <= x for v in a) / len(a)
        fb = sum(v <= x for v in b) / len(b)
        best = max(best, abs(fa - fb))
    return best


@pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")
@given(st.lists(finite, min_size=1, max_size=40), st.lists(finite, min_size=1, max_size=40))
def test_ks_statistic_matches_the_ecdf_loop_and_scipy(a, b):
    stat, p = ks_test(a, b)
    assert stat == pytest.approx(ks_loop(a, b))
    assert p == pytest.approx(ks_2samp(a, b).pvalue)


@given(st.lists(finite, min_size=2, max_size=40), st.lists(finite, min_size=2, max_size=40))
def test_js_distance_is_bounded_symmetric_and_matches_scipy(a, b):
    d = js_distance(a, b)
    assert 0.0 <= d <= 1.0 + 1e-12
    assert d == pytest.approx(js_distance(b, a))
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=10)
    expected = jensenshannon(np.histogram(a, edges)[0], np.histogram(b, edges)[0], base=2)
    assert d == pytest.approx(float(expected), abs=1e-9)


def test_js_distance_extremes_and_categorical():
    assert js_distance(["a"] * 10, ["b"] * 10, categorical=True) == pytest.approx(1.0)
    assert js_distance(["a", "b"], ["b", "a"], categorical=True) == pytest.approx(0.0)
    # p = (0.5, 0.5, 0), q = (0, 0.5, 0.5), m = (.25, .5, .25): JS divergence = 0.5 bit
    assert js_distance(["a", "b"], ["b", "c"], categorical=True) == pytest.approx(math.sqrt(0.5))


@given(st.lists(finite, min_size=5, max_size=30), st.data())
def test_wasserstein_normalized_matches_sorted_difference(a, data):
    b = data.draw(st.lists(finite, min_size=len(a), max_size=len(a)))
    expected = np.mean(np.abs(np.sort(a) - np.sort(b))) / max(np.std(a), 0.001)
    assert wasserstein_normalized(a, b) == pytest.approx(expected, rel=1e-7, abs=1e-7)


def test_chi_square_hand_computed():
    ref = ["a"] * 30 + ["b"] * 10
    cur = ["a"] * 10 + ["b"] * 10 + ["c"] * 20
    obs = np.array([[30, 10, 0], [10, 10, 20]], dtype=float)
    expected_counts = obs.sum(1, keepdims=True) * obs.sum(0, keepdims=True) / obs.sum()
    stat = ((obs - expected_counts) ** 2 / expected_counts).sum()
    got_stat, got_p, dof = chi_square(ref, cur)
    assert got_stat == pytest.approx(stat) and dof == 2
    assert got_p == pytest.approx(chi2_dist.sf(stat, 2))


def test_topk_shift_and_unknown_rate_by_hand():
    ref = ["EUR"] * 6 + ["USD"] * 3 + ["GBP"]
    cur = ["EUR"] * 3 + ["USD"] * 3 + ["JPY"] * 4
    shift = topk_shift(ref, cur, k=2)
    assert [row["category"] for row in shift["table"]] == ["EUR", "USD"]
    assert shift["category"] == "EUR" and shift["max_abs_shift"] == pytest.approx(0.3)
    assert unknown_rate(ref, cur) == pytest.approx(0.4)
    assert unknown_rate(ref, ref) == 0.0


def test_nulls_are_dropped_and_bad_input_refused():
    assert psi([1.0, 2.0, None, float("nan"), 3.0], [1.0, 2.0, 3.0], bins=3) == pytest.approx(0.0)
    assert psi_detail([1.0, None, 2.0], [1.0]).n_reference == 2
    with pytest.raises(ValidationError, match="no non-null"):
        psi([], [1.0])
    with pytest.raises(ValidationError, match="infinite"):
        psi([1.0, float("inf")], [1.0])
    with pytest.raises(ValidationError, match="bins"):
        psi([1.0], [1.0], bins=1)
    with pytest.raises(ValidationError, match="numeric"):
        ks_test(["a", "b"], [1.0])
    with pytest.raises(ValidationError, match="k must"):
        topk_shift(["a"], ["a"], k=0)


@given(st.lists(st.integers(0, 6), min_size=1, max_size=50), st.lists(st.integers(0, 6), min_size=1, max_size=50),
       st.integers(min_value=2, max_value=10))
def test_psi_matches_the_loop_when_many_values_sit_on_edges(ref, cur, bins):
    assert psi(ref, cur, bins=bins) == pytest.approx(psi_loop(ref, cur, bins), rel=1e-9, abs=1e-9)


share = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1))  # 0 or at least 1 row in a million
shares = st.lists(share, min_size=2, max_size=12)


@given(shares, st.data())
def test_psi_from_shares_is_symmetric_in_its_inputs(ref, data):
    cur = data.draw(st.lists(share, min_size=len(ref), max_size=len(ref)))
    from mlops_kit.quality import psi_from_shares
    assert psi_from_shares(ref, cur) == pytest.approx(psi_from_shares(cur, ref), rel=1e-12, abs=1e-12)
    assert psi_from_shares(ref, cur) >= 0
    with pytest.raises(ValidationError, match="same length"):
        psi_from_shares(ref, cur + [0.5])
