"""Bounded intervals for accuracies: Wilson per run, two-level bootstrap over seeds."""

from __future__ import annotations

import pytest

from myopia.results import proportion_over_seeds, wilson95


def test_wilson_interval_matches_known_values():
    assert wilson95(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)
    assert wilson95(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert wilson95(10, 10) == pytest.approx([0.7225, 1.0], abs=1e-4)


def test_over_seeds_is_bounded_and_covers_seed_spread():
    stat = proportion_over_seeds([10, 500, 990], [1000, 1000, 1000])
    assert stat["mean"] == pytest.approx(0.5)
    lo, hi = stat["ci95"]
    assert 0 <= lo < 0.1 and 0.9 < hi <= 1  # the seeds disagree wildly: the interval says so
    tight = proportion_over_seeds([500, 505, 495], [1000, 1000, 1000])["ci95"]
    assert tight[0] > 0.45 and tight[1] < 0.55
    # all seeds at 0: not a point, the pooled Wilson interval (never below 0)
    assert proportion_over_seeds([0, 0], [50, 50])["ci95"] == wilson95(0, 100)
    assert proportion_over_seeds([3, 4], [10, 10]) == proportion_over_seeds([3, 4], [10, 10])  # seeded


def test_one_seed_gets_its_wilson_interval_and_a_note():
    stat = proportion_over_seeds([7], [20])
    assert stat["ci95"] == wilson95(7, 20) and "one seed" in stat["note"]
    with pytest.raises(ValueError):
        proportion_over_seeds([], [])
