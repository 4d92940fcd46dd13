"""The compute-equivalent myopia gap: a sweep of model sizes x {vanilla, myopic} x seeds.

Every cell is one training run of the built-in GPT on one task (default: the built-in text
corpus). Sizes are named ``L<layers>-d<width>`` (heads: ``max(2, width // 32)``).

Token budget rule: a model with N parameters (all but the position table) is trained on
``tokens(N) = tokens * (N / 1e5) ** token_exponent`` tokens, rounded up to whole batches,
so compute C = 6 N tokens(N) grows as N^1.5 by default — between a fixed data budget (N^1)
and a compute-optimal one (N^2, out of reach on a CPU). Vanilla and myopic cells of one
size and seed share initialisation, data order and budget.

Fit: per mode, a power law ``L(C) = a * C^(-b)`` by least squares on (log C, log L) of the
per-size mean test losses. Two parameters are identifiable from 4-6 sizes; the usual
irreducible term (``a C^-b + c``) is not at CPU scale, where the curves show no flattening,
and it makes extrapolation unstable. The **compute multiplier** k solves
``L_myopic(k C) = L_vanilla(C)`` at the largest measured C (both sides from the fits):
``k C = (L_vanilla(C) / a_m)^(-1 / b_m)``. k > 1 means myopic training needs k times the
compute for the same loss; whenever k C lies outside the measured compute range it is an
extrapolation and ``extrapolated`` is true (with a positive gap at the largest size, it
always is). The 95% interval is a percentile bootstrap over seeds: seeds are resampled with
replacement (paired: a seed's vanilla and myopic cells stay together) and everything refit.

Cells run through the measure scaffold (parallel worker processes); finished cells are
reused untouched and interrupted ones resume from their checkpoint. A directory that holds
a sweep with a different config is refused, never overwritten.

Sharding: ``shard=(i, n)`` (``myopia sweep --shard i/n``) trains the i-th of n shares of the
cells — a job array on any scheduler, or several machines writing into one ``out_dir`` on a
shared filesystem — and ``collect=True`` (``--collect``) fits and reports once every cell has
finished, naming any that has not (:mod:`myopia.measures.shards`).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from myopia.measures.scaffold import MeasureResult, as_seeds, as_task, run_measure, trivial_loss
from myopia.measures.shards import Share, share_args, train_share
from myopia.policy import GradientPolicy
from myopia.presets import SWEEP_TRAIN
from myopia.results import mean_ci95
from myopia.runs import RunSpec, build_model
from myopia.train import TrainConfig

DEFAULT_SIZES = ("L2-d32", "L2-d64", "L3-d96", "L4-d128")
LARGER_SIZES = ("L4-d192", "L6-d256")  # a few M parameters: a GPU (or a patient CPU)
DEFAULT_TOKENS = 500_000  # training tokens of a 100k-parameter model
DEFAULT_TOKEN_EXPONENT = 0.5
REFERENCE_PARAMS = 1e5
N_BOOTSTRAP = 2000


def size_shape(name: str) -> dict:
    """``"L4-d128"`` -> the built-in GPT's shape."""
    m = re.fullmatch(r"L(\d+)-d(\d+)", name)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 2:
        raise ValueError(f"model size {name!r} is not of the form L<layers>-d<width>, e.g. L2-d64")
    layers, width = int(m.group(1)), int(m.group(2))
    heads = max(2, width // 32)
    if width % heads:
        raise ValueError(f"model size {name!r}: width {width} must be divisible by {heads} heads; use a multiple of 32")
    return {"kind": "gpt", "n_layer": layers, "n_head": heads, "n_embd": width}


def token_budget(params: int, tokens: int, exponent: float) -> int:
    return int(math.ceil(tokens * (params / REFERENCE_PARAMS) ** exponent))


@dataclass
class SweepResult(MeasureResult):
    measure = "sweep"

    config: dict
    token_budget_rule: str
    trivial_loss: float
    cells: list[dict]  # one per run: size, params, tokens, compute, mode, seed, test_loss, ...
    sizes: list[dict]  # per size: params, tokens, compute, vanilla/myopic/gap mean with 95% CI over seeds
    fit: dict  # per mode: {"a", "b"} of L = a * C^-b
    compute_multiplier: dict  # {"value", "ci95", "extrapolated", "at_compute", ...}
    multiplier_by_size: list[dict]  # k at each measured compute, with bootstrap CI
    wall_time_s: float = 0.0


# --------------------------------------------------------------------------- fitting
def fit_power_law(compute: np.ndarray, loss: np.ndarray) -> tuple[float, float]:
    """(a, b) of L = a * C^-b, least squares in log-log space."""
    slope, intercept = np.polyfit(np.log(compute), np.log(loss), 1)
    return float(math.exp(intercept)), float(-slope)


def multiplier(fit_v: tuple[float, float], fit_m: tuple[float, float], c: float) -> float | None:
    """k with L_myopic(k c) = L_vanilla(c); None where the myopic fit does not fall with compute."""
    (a_v, b_v), (a_m, b_m) = fit_v, fit_m
    if not b_m > 0:
        return None
    target = a_v * c ** (-b_v)
    return float(math.exp(-math.log(target / a_m) / b_m - math.log(c)))


def fit_and_multiplier(compute: np.ndarray, van: np.ndarray, myo: np.ndarray) -> tuple[dict, list[float | None]]:
    """Fits on per-size means; k at every measured compute. van/myo: (sizes, seeds)."""
    fv = fit_power_law(compute, van.mean(1))
    fm = fit_power_law(compute, myo.mean(1))
    return {"vanilla": fv, "myopic": fm}, [multiplier(fv, fm, c) for c in compute]


def bootstrap_multipliers(compute: np.ndarray, van: np.ndarray, myo: np.ndarray, n: int = N_BOOTSTRAP,
                          seed: int = 0) -> np.ndarray:
    """(n, sizes) multipliers from seed-resampled fits (NaN where undefined)."""
    rng = np.random.default_rng(seed)
    S = van.shape[1]
    out = np.full((n, len(compute)), np.nan)
    for i in range(n):
        idx = rng.integers(0, S, S)
        _, ks = fit_and_multiplier(compute, van[:, idx], myo[:, idx])
        out[i] = [np.nan if k is None else k for k in ks]
    return out


def _ci(samples: np.ndarray) -> list[float] | None:
    ok = samples[np.isfinite(samples)]
    if len(ok) == 0:
        return None
    return [float(np.percentile(ok, 2.5)), float(np.percentile(ok, 97.5))]


# --------------------------------------------------------------------------- the sweep
def sweep_specs(task_spec: dict, sizes: list[str], seeds: list[int], budgets: dict, train: dict,
                detach: str) -> list[RunSpec]:
    myopic = GradientPolicy(horizon=0, detach=detach)
    specs = []
    for size in sizes:
        b = budgets[size]
        tcfg = {**train, "steps": b["steps"], "eval_every": max(25, b["steps"] // 4),
                "checkpoint_every": max(50, b["steps"] // 5)}
        for seed in seeds:
            for mode, pol in (("vanilla", GradientPolicy()), ("myopic", myopic)):
                specs.append(RunSpec(f"{size}-{mode}-seed{seed}", size_shape(size), task_spec, pol.to_dict(), tcfg, seed,
                                     extra={"size": size, "mode": mode}))
    # largest cells first, so parallel workers finish together
    return sorted(specs, key=lambda s: -budgets[s.extra["size"]]["compute"])


def compute_sweep(
    task: str | dict = "text",
    *,
    sizes: list[str] | tuple[str, ...] = DEFAULT_SIZES,
    seeds: int | list[int] = 3,
    tokens: int = DEFAULT_TOKENS,
    token_exponent: float = DEFAULT_TOKEN_EXPONENT,
    train: dict | None = None,
    detach: str = "kv",
    out_dir: str | Path = "runs/sweep",
    workers: int = 1,
    progress: bool = True,
    shard: str | tuple[int, int] | None = None,
    collect: bool = False,
) -> SweepResult | Share:
    """Run (or resume) the sweep in ``out_dir`` and fit the compute multiplier.

    ``train`` overrides fields of :data:`myopia.presets.SWEEP_TRAIN`. Writes ``config.json``
    and ``results.json``; each cell lives in ``out_dir/runs/<key>/``. ``shard=(i, n)`` (or
    ``"i/n"``) trains only shard i's cells and returns a :class:`~myopia.measures.shards.Share`; ``collect``
    trains nothing and fits once every cell has finished (see the module docstring).
    """
    t0 = time.perf_counter()
    shard = share_args(shard, collect)
    sizes = list(sizes)
    for size in sizes:
        size_shape(size)  # names a malformed size before counting them
    if len(sizes) < 2:
        raise ValueError(f"a sweep needs at least 2 model sizes to fit loss against compute, got {sizes}; use --sizes")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"--sizes lists a size twice: {sizes}")
    seeds = as_seeds(seeds)
    if tokens < 1:
        raise ValueError(f"--tokens must be >= 1, got {tokens}")
    GradientPolicy(horizon=0, detach=detach)
    task_obj, task_spec = as_task(task)
    if task_obj.regression:
        raise ValueError(f"the sweep measures token loss; task {task_obj.name!r} is a regression task, use --task text")
    base = TrainConfig(**{**SWEEP_TRAIN, **(train or {})})  # validates
    tokens_per_step = base.batch_size * task_obj.seq_len

    budgets = {}
    for size in sizes:
        shape = size_shape(size)
        params = build_model(shape, task_obj, 0).num_params()
        steps = max(1, math.ceil(token_budget(params, tokens, token_exponent) / tokens_per_step))
        budgets[size] = {"params": params, "steps": steps, "tokens": steps * tokens_per_step,
                         "compute": 6.0 * params * steps * tokens_per_step}

    config = {"task": task_spec, "sizes": sizes, "seeds": seeds, "tokens": tokens,
              "token_exponent": token_exponent, "train": base.to_dict(), "detach": detach}
    specs = sweep_specs(task_spec, sizes, seeds, budgets, base.to_dict(), detach)

    def summarize(runs, out: Path) -> SweepResult:
        triv, _ = trivial_loss(task_obj, base.test_batches, base.batch_size)
        return summarize_sweep(runs, specs, budgets, sizes, seeds, {"measure": "sweep", **config}, triv,
                               tokens_per_step, t0)

    if shard is not None:
        cost = {s.key: budgets[s.extra["size"]]["compute"] for s in specs}
        return train_share("sweep", config, specs, cost, shard, out_dir, workers=workers, progress=progress)
    # a sweep always resumes: rerunning the same command continues it, another config is refused
    return run_measure("sweep", config, specs=specs, summarize=summarize, out_dir=out_dir, resume=True,
                       workers=workers, progress=progress, desc="sweep", collect=collect)


def summarize_sweep(runs, specs, budgets, sizes, seeds, config, triv, tokens_per_step, t0) -> SweepResult:
    """Per-size losses and gaps, the power-law fits and the compute multiplier with its CI."""
    cells = []
    for s in specs:
        r = runs[s.key]
        b = budgets[s.extra["size"]]
        cells.append({"key": s.key, "size": s.extra["size"], "mode": s.extra["mode"], "seed": s.seed,
                      "params": b["params"], "tokens": b["tokens"], "steps": b["steps"], "compute": b["compute"],
                      "test_loss": r.test_loss, "wall_time_s": r.wall_time_s})
    loss = {(c["size"], c["mode"], c["seed"]): c["test_loss"] for c in cells}
    van = np.array([[loss[(z, "vanilla", s)] for s in seeds] for z in sizes])  # (sizes, seeds)
    myo = np.array([[loss[(z, "myopic", s)] for s in seeds] for z in sizes])
    compute = np.array([budgets[z]["compute"] for z in sizes])
    order = np.argsort(compute)
    sizes_sorted = [sizes[i] for i in order]
    compute, van, myo = compute[order], van[order], myo[order]

    fits, ks = fit_and_multiplier(compute, van, myo)
    boot = bootstrap_multipliers(compute, van, myo)
    per_size = []
    for i, z in enumerate(sizes_sorted):
        per_size.append({"size": z, **budgets[z], "vanilla": mean_ci95(list(van[i])), "myopic": mean_ci95(list(myo[i])),
                         "gap": mean_ci95(list(myo[i] - van[i]))})
    by_size = [{"size": z, "compute": float(compute[i]), "value": ks[i], "ci95": _ci(boot[:, i])}
               for i, z in enumerate(sizes_sorted)]
    c_max, k = float(compute[-1]), ks[-1]
    cm = {
        "value": k,
        "ci95": _ci(boot[:, -1]),
        "extrapolated": bool(k is None or not compute[0] <= k * c_max <= compute[-1]),
        "at_compute": c_max,
        "measured_compute_range": [float(compute[0]), float(compute[-1])],
        "equivalent_myopic_compute": None if k is None else k * c_max,
        # how far the myopic fit is followed beyond the largest measured compute (0: inside the range)
        "extrapolation_decades": None if k is None else max(0.0, math.log10(k), math.log10(compute[0] / (k * c_max))),
        "n_seeds": len(seeds),
        "n_bootstrap": N_BOOTSTRAP,
        "bootstrap_undefined_share": float(np.mean(~np.isfinite(boot[:, -1]))),
        "method": "power law L = a*C^-b per mode (least squares in log-log); k solves L_myopic(k*C) = L_vanilla(C) "
                  "at the largest C; 95% CI: percentile bootstrap over seeds (paired)",
    }
    if len(seeds) < 3:
        cm["note"] = (f"only {len(seeds)} seed(s): a bootstrap over so few seeds understates the uncertainty; "
                      f"use --seeds 3 or more for an interval worth quoting")
    result = SweepResult(
        config=config,
        token_budget_rule=f"tokens(N) = {config['tokens']} * (N / {REFERENCE_PARAMS:g}) ** {config['token_exponent']}, "
                          f"rounded up to "
                          f"whole batches of {tokens_per_step} tokens; N = parameters excluding the position table; "
                          f"C = 6 * N * tokens",
        trivial_loss=triv, cells=sorted(cells, key=lambda c: (c["compute"], c["mode"], c["seed"])), sizes=per_size,
        fit={m: {"a": a, "b": b} for m, (a, b) in fits.items()}, compute_multiplier=cm, multiplier_by_size=by_size,
        wall_time_s=time.perf_counter() - t0,
    )
    return result
