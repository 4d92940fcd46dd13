"""The compute multiplier is read off the measured curves: interpolated inside the measured
range, a bound outside it, never an extrapolated value; its interval covers seeds and fit form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from myopia.measures.multiplier import (
    compare_forms, crossing, fit_power_law, fit_saturating, format_multiplier, loo_error, multiplier_at, multipliers,
    predict, trend,
)

C = np.array([1e9, 4e9, 1.6e10, 6.4e10, 2.56e11])


def curve(c, shift=1.0):
    return 30.0 * (c / shift) ** -0.1  # L_myopic(C) = L_vanilla(C / shift): myopic needs shift x the compute


def test_fits_recover_their_parameters():
    a, b = fit_power_law(C, curve(C))
    assert a == pytest.approx(30.0, rel=1e-9) and b == pytest.approx(0.1, rel=1e-9)
    floor, A, alpha = fit_saturating(C, 1.5 + 20 * C ** -0.2)
    assert floor == pytest.approx(1.5, abs=0.05) and alpha == pytest.approx(0.2, abs=0.02)
    assert loo_error("power_law", C, curve(C)) == pytest.approx(0.0, abs=1e-9)


def test_shifted_curve_gives_the_shift_where_interpolated_and_bounds_elsewhere():
    van, myo = curve(C), curve(C, shift=4.0)  # k = 4 exactly, one size step (4x compute) apart
    for i in range(len(C) - 1):
        k = multiplier_at(C, van, myo, i)
        assert k["method"] == "interpolated" and k["value"] == pytest.approx(4.0, rel=1e-9)
    last = multiplier_at(C, van, myo, len(C) - 1)  # myopic never reaches the largest vanilla loss
    assert last == {"value": 1.0, "method": "bound", "direction": ">"}  # k > C_max / C


def test_myopic_better_everywhere_is_an_upper_bound():
    k = multiplier_at(C, curve(C), curve(C) - 1.0, 2)
    assert k["method"] == "bound" and k["direction"] == "<" and k["value"] == pytest.approx(C[0] / C[2])


def test_crossing_is_linear_in_log_compute():
    assert crossing(np.array([1.0, 100.0]), np.array([2.0, 1.0]), 1.5) == pytest.approx(10.0)
    assert crossing(np.array([1.0, 100.0]), np.array([2.0, 1.0]), 0.5) is None


def test_interval_brackets_the_truth_and_bounds_have_none():
    rng = np.random.default_rng(0)
    van = curve(C)[:, None] + rng.normal(0, 0.005, (len(C), 8))
    myo = curve(C, 3.0)[:, None] + rng.normal(0, 0.005, (len(C), 8))  # k = 3: between the 4x size steps
    rows = multipliers(C, van, myo, n_boot=200)
    covered = 0
    for r in rows[:-1]:
        assert r["method"] == "interpolated" and r["value"] == pytest.approx(3.0, rel=0.05)
        lo, hi = r["ci95"]
        covered += lo <= 3.0 <= hi
        assert hi / lo < 1.2
    assert covered >= 3  # a 95% interval per size: missing the truth at 2 of 4 sizes would be a defect
    assert rows[-1]["method"] == "bound" and rows[-1]["ci95"] is None
    assert "stays about constant" in trend(rows)


def test_one_seed_gives_no_interval():
    rows = multipliers(C, curve(C)[:, None], curve(C, 4.0)[:, None], n_boot=50)
    assert all(r["ci95"] is None and r["bootstrap_bound_share"] is None for r in rows)


def test_forms_are_compared_by_leave_one_size_out_error():
    sat = 2.0 + 40 * C ** -0.15
    table = compare_forms(C, sat, sat + 0.1)
    assert table["form"] == "saturating"
    assert table["alternatives"]["saturating"]["loo_error"] < table["alternatives"]["power_law"]["loo_error"]
    assert math.isfinite(predict("saturating", tuple(table["params"]["saturating"]["vanilla"]), 1e10))


def test_forms_are_chosen_over_every_variant_at_once():
    sat = 2.0 + 40 * C ** -0.15
    one = compare_forms(C, sat, sat + 0.1)
    both = compare_forms(C, sat, {"kv": sat + 0.1, "hidden": sat + 0.05})
    assert both["form"] == "saturating" and set(both["params"]["saturating"]) == {"vanilla", "kv", "hidden"}
    alt = both["alternatives"]["power_law"]
    # the summed error counts the vanilla curve once and each myopic curve once
    assert alt["loo_error"] == pytest.approx(alt["loo_error_vanilla"] + sum(alt["loo_error_myopic"].values()))
    assert alt["loo_error_myopic"]["kv"] == pytest.approx(one["alternatives"]["power_law"]["loo_error_myopic"])


def test_k_is_never_an_extrapolation():
    """Random noisy curves that cross, never meet, or lie on either side: every k is read
    inside the measured compute range or is exactly the bound C_max/C or C_min/C."""
    rng = np.random.default_rng(1)
    for trial in range(40):
        shift = float(np.exp(rng.uniform(-3, 4)))  # from myopic far better to far worse
        slope = rng.uniform(0.0, 0.15)  # flat myopic curves too
        van = curve(C)[:, None] + rng.normal(0, 0.01, (len(C), 3))
        myo = (30.0 * (C / shift) ** -slope)[:, None] + rng.normal(0, 0.01, (len(C), 3))
        for r in multipliers(C, van, myo, n_boot=20, seed=trial):
            c = r["compute"]
            if r["method"] == "interpolated":
                for k in [r["value"], *(r["ci95"] or [])]:  # the interval too stays inside the measured range
                    assert C[0] * (1 - 1e-12) <= k * c <= C[-1] * (1 + 1e-12)
            else:
                assert r["ci95"] is None
                assert r["value"] == pytest.approx(C[-1] / c if r["direction"] == ">" else C[0] / c, rel=1e-12)


def test_format_multiplier():
    assert format_multiplier({"value": 1.1966, "ci95": [1.0098, 1.2565], "method": "interpolated",
                              "direction": "="}) == "1.2 [1.01, 1.26]"
    assert format_multiplier({"value": 16.402, "ci95": None, "method": "bound", "direction": ">"}) == "> 16.4 (bound)"
