"""The compute multiplier k of a sweep, read off the measured curves — never extrapolated.

k at a measured vanilla compute C solves ``L_myopic(k·C) = L_vanilla(C)``: how much more
compute myopic training needs to reach the loss vanilla training reaches with C.

* **interpolated**: when ``L_vanilla(C)`` lies inside the range of measured myopic losses,
  k·C is read off the measured myopic curve (piecewise linear in log C between the sizes
  where it crosses that loss);
* **bound**: otherwise k is only bounded — ``k > C_max / C`` when the myopic curve never
  reaches that loss within the measured compute (it needs more than the largest run had),
  ``k < C_min / C`` when even the smallest myopic run is already better.

No fitted law is followed outside the measured range. Fits (a pure power law ``a·C^-b`` and
a saturating ``L∞ + A·C^-α``) are summaries of each curve; their form is compared by
leave-one-size-out error, and within the measured range every form that fits gives its own
k, so the interval covers the choice of form as well as the seeds: it is the envelope of the
percentile-bootstrap intervals (seeds resampled with replacement, paired so a seed's
vanilla and myopic cells stay together) over the interpolation and every fit form.
"""

from __future__ import annotations

import math

import numpy as np

N_BOOTSTRAP = 500
FORMS = ("power_law", "saturating")


# --------------------------------------------------------------------------- fit forms
def fit_power_law(compute: np.ndarray, loss: np.ndarray) -> tuple[float, ...]:
    """(a, b) of L = a·C^-b, least squares in log-log space."""
    slope, intercept = np.polyfit(np.log(compute), np.log(loss), 1)
    return (float(math.exp(intercept)), float(-slope))


def fit_saturating(compute: np.ndarray, loss: np.ndarray) -> tuple[float, ...] | None:
    """(L∞, A, α) of L = L∞ + A·C^-α: for each L∞ on a grid below min L, a power law on L − L∞;
    the L∞ with the least squared error in L. None when fewer than 3 sizes."""
    if len(compute) < 3:
        return None
    best = None
    for frac in np.linspace(0.0, 0.99, 40):
        floor = frac * float(loss.min())
        a, b = fit_power_law(compute, loss - floor)
        err = float(np.sum((floor + a * compute ** -b - loss) ** 2))
        if best is None or err < best[0]:
            best = (err, floor, a, b)
    return best[1:]


def predict(form: str, params: tuple[float, ...], compute) -> np.ndarray:
    c = np.asarray(compute, dtype=float)
    if form == "power_law":
        a, b = params
        return a * c ** -b
    floor, a, b = params
    return floor + a * c ** -b


def fit(form: str, compute: np.ndarray, loss: np.ndarray):
    return fit_power_law(compute, loss) if form == "power_law" else fit_saturating(compute, loss)


def loo_error(form: str, compute: np.ndarray, loss: np.ndarray) -> float | None:
    """Root-mean-square error predicting each size's loss from a fit to the other sizes."""
    errs = []
    for i in range(len(compute)):
        keep = np.arange(len(compute)) != i
        params = fit(form, compute[keep], loss[keep])
        if params is None:
            return None
        errs.append(float(predict(form, params, compute[i]) - loss[i]))
    return float(np.sqrt(np.mean(np.square(errs))))


# --------------------------------------------------------------------------- the multiplier
def crossing(compute: np.ndarray, loss: np.ndarray, target: float) -> float | None:
    """Compute at which the piecewise-linear (in log C) curve first falls to ``target``."""
    logc = np.log(compute)
    for i in range(len(compute) - 1):
        lo, hi = loss[i], loss[i + 1]
        if (lo - target) * (hi - target) <= 0 and lo != hi:
            t = (lo - target) / (lo - hi)
            return float(math.exp(logc[i] + t * (logc[i + 1] - logc[i])))
        if lo == target:
            return float(compute[i])
    return float(compute[-1]) if loss[-1] == target else None


def multiplier_at(compute: np.ndarray, van: np.ndarray, myo: np.ndarray, i: int, curve=None) -> dict:
    """k at the i-th measured compute from mean losses ``van``/``myo`` (sizes,). ``curve``:
    the myopic curve to read (default: the measured means; else a fitted form's values,
    used only inside the measured range)."""
    c = float(compute[i])
    target = float(van[i])
    curve = myo if curve is None else curve
    if target < float(np.min(curve)):
        return {"value": float(compute[-1]) / c, "method": "bound", "direction": ">"}
    if target > float(np.max(curve)):
        return {"value": float(compute[0]) / c, "method": "bound", "direction": "<"}
    kc = crossing(compute, curve, target)
    if kc is None:  # inside the range but no crossing: a non-monotone curve, read its nearest point
        kc = float(compute[int(np.argmin(np.abs(curve - target)))])
    return {"value": kc / c, "method": "interpolated", "direction": "="}


def _estimates(compute, van, myo, forms) -> list[dict[str, dict]]:
    """k at every size by the interpolation and by each fit form (fits read only inside the
    measured range; where a fit gives a bound, the measured curve's bound is used)."""
    grid = np.geomspace(compute[0], compute[-1], 200)
    fitted = {}
    for form in forms:
        params = fit(form, compute, myo)
        if params is not None:
            fitted[form] = predict(form, params, grid)
    out = []
    for i in range(len(compute)):
        est = {"interpolation": multiplier_at(compute, van, myo, i)}
        for form, curve in fitted.items():
            k = multiplier_at(grid, np.full(len(grid), van[i]), curve, 0)
            est[form] = ({**k, "value": k["value"] * float(grid[0]) / float(compute[i])}
                         if k["method"] == "interpolated" else est["interpolation"])
        out.append(est)
    return out


def multipliers(compute: np.ndarray, van: np.ndarray, myo: np.ndarray, *, n_boot: int = N_BOOTSTRAP,
                seed: int = 0, forms=FORMS) -> list[dict]:
    """k at every measured compute, for losses ``van``, ``myo`` of shape (sizes, seeds)
    sorted by compute: value and method from the measured means, a 95% interval over seeds
    and fit forms, the share of bootstrap samples in which k is only a bound."""
    rng = np.random.default_rng(seed)
    n_sizes, n_seeds = van.shape
    logk: list[dict[str, list[float]]] = [{} for _ in range(n_sizes)]
    bounds = np.zeros(n_sizes)
    n = n_boot if n_seeds > 1 else 0
    for _ in range(n):
        idx = rng.integers(0, n_seeds, n_seeds)
        for i, est in enumerate(_estimates(compute, van[:, idx].mean(1), myo[:, idx].mean(1), forms)):
            bounds[i] += est["interpolation"]["method"] == "bound"
            for name, k in est.items():
                logk[i].setdefault(name, []).append(math.log(k["value"]))
    rows = []
    for i in range(n_sizes):
        point = multiplier_at(compute, van.mean(1), myo.mean(1), i)
        ci = None
        if point["method"] == "interpolated" and logk[i]:  # a bound has no interval: the bound is what is known
            lo = min(float(np.percentile(v, 2.5)) for v in logk[i].values())
            hi = max(float(np.percentile(v, 97.5)) for v in logk[i].values())
            ci = [math.exp(lo), math.exp(hi)]
        rows.append({"compute": float(compute[i]), **point, "ci95": ci,
                     "bootstrap_bound_share": float(bounds[i] / n) if n else None})
    return rows


def compare_forms(compute: np.ndarray, van: np.ndarray, myo, forms=FORMS) -> dict:
    """Leave-one-size-out error of each form on the vanilla curve and on the myopic one — or
    each myopic one, for ``myo`` a dict variant -> mean losses (sizes,); the chosen form is
    the one with the lowest error summed over the curves. A summary only: k never comes from
    extrapolation."""
    curves = myo if isinstance(myo, dict) else {"myopic": myo}
    table = {}
    for form in forms:
        ev = loo_error(form, compute, van)
        em = {name: loo_error(form, compute, c) for name, c in curves.items()}
        total = None if ev is None or None in em.values() else ev + sum(em.values())
        table[form] = {"loo_error_vanilla": ev, "loo_error_myopic": em if isinstance(myo, dict) else em["myopic"],
                       "loo_error": total}
    scored = {f: t["loo_error"] for f, t in table.items() if t["loo_error"] is not None}
    best = min(scored, key=scored.get) if scored else None
    params = {f: {name: fit(f, compute, c) for name, c in {"vanilla": van, **curves}.items()} for f in forms}
    return {"form": best, "loo_error": scored.get(best), "alternatives": table,
            "params": {f: {m: (list(p) if p is not None else None) for m, p in ps.items()} for f, ps in params.items()}}


def format_multiplier(row: dict, digits: int = 3) -> str:
    """``1.2 [1.01, 1.26]`` for an interpolated k, ``> 16.4 (bound)`` for a bound."""
    if row["method"] == "bound":
        return f"{row['direction']} {row['value']:.{digits}g} (bound)"
    ci = "" if row.get("ci95") is None else f" [{row['ci95'][0]:.{digits}g}, {row['ci95'][1]:.{digits}g}]"
    return f"{row['value']:.{digits}g}{ci}"


def trend(rows: list[dict]) -> str:
    """Does k change with scale? A sentence from the per-size rows (interpolated ones only)."""
    pts = [(r["compute"], r["value"]) for r in rows if r["method"] == "interpolated"]
    bounds = [r for r in rows if r["method"] == "bound"]
    if len(pts) < 2:
        tail = f"; {len(bounds)} size(s) give only a bound" if bounds else ""
        return f"fewer than 2 sizes give an interpolated k: no trend can be read{tail}"
    slope = np.polyfit(np.log10([p[0] for p in pts]), np.log10([p[1] for p in pts]), 1)[0]
    word = "grows" if slope > 0.05 else "shrinks" if slope < -0.05 else "stays about constant"
    return (f"k {word} with compute over the sizes where it is interpolated (log-log slope {slope:+.2f} over "
            f"{len(pts)} sizes){'; ' + str(len(bounds)) + ' size(s) give only a bound' if bounds else ''}")
