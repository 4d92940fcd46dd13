"""The compute-equivalent myopia gap: a sweep of model sizes x {vanilla, strict myopic,
the paper's myopic} x seeds.

Every cell is one training run of the built-in GPT on one task (default: the built-in text
corpus). Sizes are named ``L<layers>-d<width>`` (heads: ``max(2, width // 32)``). By default
both myopic variants are trained — strict myopia (``detach="kv"``, exactly G(0)) and the
paper's (``detach="hidden"``: past attention inputs detached, W_K/W_V still trained by
later losses) — beside one vanilla cell per size and seed that both share. All cells of one
size and seed share initialisation, data order and budget.

Token budget rule: a model with N parameters (all but the position table) is trained on
``tokens(N) = tokens * (N / 1e5) ** token_exponent`` tokens, rounded up to whole batches —
between a fixed data budget and a compute-optimal one (out of reach on a CPU).

Compute rule: ``C = 6 * (N + n_layer * T * d) * D`` FLOP for D training tokens, context
length T and width d: Kaplan et al. (2020, Table 1) count ``2N + 2 n_layer n_ctx d_attn``
forward FLOP per token (the weights' multiply-adds plus the attention scores and their
weighted sum, d_attn = d here), and the backward pass twice the forward. N is the count
above: every weight matrix, bias and LayerNorm of the blocks, the final LayerNorm, the
output head (n_embd x vocab) and the token embedding table, not the position table.
Kaplan et al. leave out both embeddings and the head; here the head is a real matrix
product and stays, and the token embedding, a table lookup, is counted as if it were one,
so C overstates the FLOP by ``6 * vocab * d * D`` (26% at L1-d32, 4% at L4-d128 with
byte tokens) — kept so N, and with it each cell's token budget, is the one used before.

The **compute multiplier** k at a measured compute C solves ``L_myopic(k C) = L_vanilla(C)``
and is read off the measured curves only (:mod:`myopia.measures.multiplier`): interpolated
where the vanilla loss lies inside the measured myopic range, else a bound (k > C_max / C or
k < C_min / C) — never extrapolated. Its 95% interval covers the seeds (paired bootstrap)
and the fit form (power law vs saturating, compared by leave-one-size-out error).

Cells run through the measure scaffold (parallel worker processes); finished cells are
reused untouched and interrupted ones resume from their checkpoint. A directory that holds
a sweep with a different config is refused, never overwritten.

Sharding: ``shard=(i, n)`` (``myopia sweep --shard i/n``) trains the i-th of n shares of the
cells — a job array on any scheduler, or several machines writing into one ``out_dir`` on a
shared filesystem — and ``collect=True`` (``--collect``) summarises once every cell has
finished, naming any that has not (:mod:`myopia.measures.shards`).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from myopia.measures.multiplier import compare_forms, multipliers, trend
from myopia.measures.scaffold import MeasureResult, as_detach, as_seeds, as_task, run_measure, trivial_loss
from myopia.measures.shards import Share, share_args, train_share
from myopia.policy import VARIANT_LABELS, GradientPolicy
from myopia.presets import SWEEP_TRAIN
from myopia.results import mean_ci95
from myopia.runs import RunSpec, build_model
from myopia.train import TrainConfig

DEFAULT_SIZES = ("L1-d32", "L2-d32", "L2-d64", "L3-d96", "L4-d128")
LARGER_SIZES = ("L4-d192", "L6-d256")  # a few M parameters: a GPU (or a patient CPU)
DEFAULT_TOKENS = 500_000  # training tokens of a 100k-parameter model
DEFAULT_TOKEN_EXPONENT = 0.5
SWEEP_DETACH = ("kv", "hidden")
REFERENCE_PARAMS = 1e5
COMPUTE_RULE = ("C = 6 * (N + n_layer * T * d) * D FLOP: forward 2N + 2 n_layer T d per token (Kaplan et al. 2020: "
                "weights plus attention scores and weighted sum, context T, width d), backward twice the forward; "
                "N = all parameters but the position table (blocks, final LayerNorm, output head and the token "
                "embedding table, whose lookup is counted as a product); D = training tokens")


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


def training_compute(params: int, n_layer: int, seq_len: int, width: int, tokens: int) -> float:
    """FLOP of training on ``tokens`` tokens (:data:`COMPUTE_RULE`)."""
    return 6.0 * (params + n_layer * seq_len * width) * tokens


@dataclass
class SweepResult(MeasureResult):
    measure = "sweep"

    config: dict
    token_budget_rule: str
    compute_rule: str
    trivial_loss: float
    labels: dict  # variant -> label
    cells: list[dict]  # one per run: size, params, tokens, compute, mode, detach, seed, test_loss, ...
    # per size (by compute): size, params, tokens, steps, compute, vanilla_loss [per seed], vanilla,
    # and per variant {"policy", "myopic_loss" [per seed], "myopic", "gap", "gap_per_seed"}
    sizes: list[dict]
    multiplier: dict  # variant -> per size {size, compute, value, ci95, method, direction, ...}
    fit: dict  # {"form", "loo_error", "alternatives", "params"}: forms by leave-one-size-out error, all curves
    trend: dict  # variant -> "k grows/shrinks/stays ..." sentence
    wall_time_s: float = 0.0


def sweep_specs(task_spec: dict, sizes: list[str], seeds: list[int], budgets: dict, train: dict,
                detach: list[str]) -> list[RunSpec]:
    """Vanilla and every myopic variant per size and seed (the vanilla cell is shared)."""
    policies = [(None, GradientPolicy()), *((d, GradientPolicy(horizon=0, detach=d)) for d in detach)]
    specs = []
    for size in sizes:
        b = budgets[size]
        tcfg = {**train, "steps": b["steps"], "eval_every": max(25, b["steps"] // 4),
                "checkpoint_every": max(50, b["steps"] // 5)}
        for seed in seeds:
            for d, pol in policies:
                specs.append(RunSpec(f"{size}-{pol.name}-seed{seed}", size_shape(size), task_spec, pol.to_dict(), tcfg,
                                     seed, extra={"size": size, "mode": "vanilla" if d is None else "myopic",
                                                  "detach": d, "policy": pol.name}))
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
    detach: str | list[str] = SWEEP_DETACH,
    out_dir: str | Path = "runs/sweep",
    workers: int = 1,
    progress: bool = True,
    shard: str | tuple[int, int] | None = None,
    collect: bool = False,
) -> SweepResult | Share:
    """Run (or resume) the sweep in ``out_dir`` and read the compute multiplier per variant.

    ``detach``: the myopic variant(s), ``"kv"`` (strict), ``"hidden"`` (the paper's) or both
    (default). ``train`` overrides fields of :data:`myopia.presets.SWEEP_TRAIN`. Writes
    ``config.json`` and ``results.json``; each cell lives in ``out_dir/runs/<key>/``.
    ``shard=(i, n)`` (or ``"i/n"``) trains only shard i's cells and returns a
    :class:`~myopia.measures.shards.Share`; ``collect`` trains nothing and summarises once
    every cell has finished (see the module docstring).
    """
    t0 = time.perf_counter()
    shard = share_args(shard, collect)
    sizes = list(sizes)
    for size in sizes:
        size_shape(size)  # names a malformed size before counting them
    if len(sizes) < 2:
        raise ValueError(f"a sweep needs at least 2 model sizes to compare loss against compute, got {sizes}; use --sizes")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"--sizes lists a size twice: {sizes}")
    seeds = as_seeds(seeds)
    if tokens < 1:
        raise ValueError(f"--tokens must be >= 1, got {tokens}")
    detach = as_detach(detach)
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
        budgets[size] = {"params": params, "tokens": steps * tokens_per_step, "steps": steps,
                         "compute": training_compute(params, shape["n_layer"], task_obj.seq_len, shape["n_embd"],
                                                     steps * tokens_per_step)}

    config = {"task": task_spec, "sizes": sizes, "seeds": seeds, "tokens": tokens,
              "token_exponent": token_exponent, "train": base.to_dict(), "detach": detach}
    specs = sweep_specs(task_spec, sizes, seeds, budgets, base.to_dict(), detach)
    rules = {"token_budget_rule": f"tokens(N) = {tokens} * (N / {REFERENCE_PARAMS:g}) ** {token_exponent}, rounded up "
                                  f"to whole batches of {tokens_per_step} tokens; N = parameters excluding the "
                                  f"position table",
             "compute_rule": COMPUTE_RULE}

    def summarize(runs, out: Path) -> SweepResult:
        triv, _ = trivial_loss(task_obj, base.test_batches, base.batch_size)
        return summarize_sweep(runs, specs, budgets, seeds, detach, {"measure": "sweep", **config}, rules, triv, t0)

    if shard is not None:
        cost = {s.key: budgets[s.extra["size"]]["compute"] for s in specs}
        return train_share("sweep", config, specs, cost, shard, out_dir, workers=workers, progress=progress)
    # a sweep always resumes: rerunning the same command continues it, another config is refused
    return run_measure("sweep", config, specs=specs, summarize=summarize, out_dir=out_dir, resume=True,
                       workers=workers, progress=progress, desc="sweep", collect=collect)


def summarize_sweep(runs, specs, budgets, seeds, detach, config, rules, triv, t0) -> SweepResult:
    """Per-size losses and paired gaps per variant, k per size and variant (interpolated or a
    bound) with its interval over seeds and fit forms, the fit-form comparison."""
    cells = []
    for s in specs:
        r = runs[s.key]
        cells.append({"key": s.key, "size": s.extra["size"], "mode": s.extra["mode"], "detach": s.extra["detach"],
                      "policy": s.extra["policy"], "seed": s.seed, **budgets[s.extra["size"]],
                      "test_loss": r.test_loss, "wall_time_s": r.wall_time_s})
    loss = {(c["size"], c["policy"], c["seed"]): c["test_loss"] for c in cells}
    sizes = sorted(budgets, key=lambda z: budgets[z]["compute"])
    policy = {d: GradientPolicy(horizon=0, detach=d).name for d in detach}
    compute = np.array([budgets[z]["compute"] for z in sizes])
    van = np.array([[loss[(z, "vanilla", s)] for s in seeds] for z in sizes])  # (sizes, seeds)
    myo = {d: np.array([[loss[(z, policy[d], s)] for s in seeds] for z in sizes]) for d in detach}

    rows = []
    for i, z in enumerate(sizes):
        row = {"size": z, **budgets[z], "vanilla_loss": list(van[i]), "vanilla": mean_ci95(list(van[i]))}
        for d in detach:
            gaps = list(myo[d][i] - van[i])  # paired by seed: same init, data order and budget
            row[d] = {"policy": policy[d], "myopic_loss": list(myo[d][i]), "myopic": mean_ci95(list(myo[d][i])),
                      "gap": mean_ci95(gaps), "gap_per_seed": gaps}
        rows.append(row)
    ks = {}
    for d in detach:
        ks[d] = [{"size": z, **k} for z, k in zip(sizes, multipliers(compute, van, myo[d]))]
    return SweepResult(
        config=config, **rules, trivial_loss=triv, labels={d: VARIANT_LABELS[d] for d in detach},
        cells=sorted(cells, key=lambda c: (c["compute"], c["policy"], c["seed"])), sizes=rows, multiplier=ks,
        fit=compare_forms(compute, van.mean(1), {d: myo[d].mean(1) for d in detach}), trend={d: trend(ks[d]) for d in detach},
        wall_time_s=time.perf_counter() - t0,
    )
