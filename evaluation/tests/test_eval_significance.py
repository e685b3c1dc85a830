"""Paired permutation test: hand cases and agreement with scipy.stats.permutation_test."""

from __future__ import annotations

import numpy as np
import pytest

from hn_evaluation.significance import paired_permutation_test


def test_identical_systems_give_p_one():
    values = [0.5, 1.0, 0.0, 0.25, 1 / 3]
    assert paired_permutation_test(values, values) == 1.0
    assert paired_permutation_test(np.zeros(300), np.zeros(300)) == 1.0


def test_hand_computed_exact_cases():
    # all 5 differences +1: only the all-plus and all-minus of 32 sign patterns reach |mean| = 1
    assert paired_permutation_test([1] * 5, [0] * 5) == pytest.approx(2 / 32)
    # differences 1, 2, 3: |±1 ±2 ±3| = 6 only for +++ and ---
    assert paired_permutation_test([1, 2, 3], [0, 0, 0]) == pytest.approx(2 / 8)
    # differences 1, 1, -1: |sum| >= 1 for every pattern
    assert paired_permutation_test([1, 1, 0], [0, 0, 1]) == 1.0
    # symmetric in its arguments
    a, b = [0.1, 0.9, 0.4, 0.6], [0.3, 0.2, 0.1, 0.5]
    assert paired_permutation_test(a, b) == paired_permutation_test(b, a)


def test_randomised_test_is_seeded_and_detects_a_real_difference():
    rng = np.random.default_rng(7)
    a = rng.random(200)
    b = a - 0.1 + rng.normal(0, 0.05, 200)
    p = paired_permutation_test(a, b, n_resamples=2000, seed=3)
    assert p == paired_permutation_test(a, b, n_resamples=2000, seed=3)
    assert p == pytest.approx(1 / 2001)  # no resample reaches the observed difference; p never 0


def test_p_values_are_calibrated_under_the_null():
    # same distribution for both systems: about 5% of p-values fall below 0.05, and their mean is near 0.5
    rng = np.random.default_rng(11)
    pvalues = [
        paired_permutation_test(rng.random(30), rng.random(30), n_resamples=500, seed=i) for i in range(60)
    ]
    assert np.mean(np.array(pvalues) < 0.05) <= 0.15
    assert 0.35 < np.mean(pvalues) < 0.65


@pytest.mark.parametrize(("n", "shift"), [(6, 0.1), (11, 0.2), (14, 0.0), (40, 0.1)])
def test_agrees_with_scipy(n, shift):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(n)
    a = rng.random(n)
    b = a + shift + rng.normal(0, 0.3, n)
    ours = paired_permutation_test(a, b, n_resamples=20000, seed=0)
    theirs = stats.permutation_test(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        n_resamples=20000,
        vectorized=True,
        random_state=0,
    ).pvalue
    if n <= 14:  # both enumerate every sign pattern: identical
        assert ours == pytest.approx(theirs, abs=1e-12)
    else:  # both sample: Monte-Carlo error of 20,000 resamples
        assert ours == pytest.approx(theirs, abs=0.015)


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        ([1, 2], [1], {}, "one value per query"),
        ([], [], {}, "no values"),
        ([1.0, float("nan")], [1.0, 1.0], {}, "NaN"),
        ([1.0], [0.0], {"n_resamples": 0}, "n_resamples"),
    ],
)
def test_bad_input(a, b, kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_permutation_test(a, b, **kwargs)
