"""Loss vs gradient horizon: how far ahead does pre-caching reach?

For each horizon, train the same model (same seeds: same initialisation and data order)
under that gradient policy and measure the held-out loss. Two kinds of horizon:

* **band** ``h`` (``0, 1, 2, ..., inf``): in *every attention layer*, query j keeps the
  gradient into the key/value of position i only when j - i <= h. The horizon is per
  attention hop: through n_layer layers a loss can still train a computation up to
  n_layer * h positions back (h = 0 is exactly myopic, h >= T - 1 vanilla).
* **block** ``block=c``: positions are grouped into consecutive blocks of c and gradient
  flows only within a block, at any depth (c = 1 is myopic, c >= T vanilla). Its meaning
  in positions is exact; prefer it when a claim is about positions.

Reported per horizon: the loss and its share of the trivial predictor's loss per seed, each
mean with a 95% percentile-bootstrap interval over seeds (both quantities are >= 0 and the
interval stays within the seeds' range, where a t-interval on a few seeds can cross 0), and
the per-position loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from myopia.measures.scaffold import MeasureResult, above_trivial, as_model, as_seeds, as_task, run_measure, trivial_loss
from myopia.policy import GradientPolicy
from myopia.presets import SYNTHETIC_TRAIN
from myopia.results import bootstrap_ci
from myopia.runs import RunSpec
from myopia.train import TrainConfig

DEFAULT_HORIZONS = ("0", "1", "2", "4", "8", "inf")


@dataclass
class HorizonResult(MeasureResult):
    measure = "horizon"

    task: dict
    model: dict
    train: dict
    seeds: list[int]
    detach: str
    n_layer: int
    trivial_loss: float
    # one per horizon: label, kind, policy, reach, loss_per_seed, loss (mean/CI), relative_to_trivial_per_seed,
    # relative_to_trivial (mean/CI), per_position
    horizons: list[dict]
    curves: dict = field(default_factory=dict)  # run key -> training curve
    note: str = ""


def parse_horizon(text: str | int | None, detach: str = "kv") -> tuple[str, GradientPolicy]:
    """``0``, ``3``, ``h=3``, ``inf``/``vanilla``, ``myopic`` or ``block=4`` -> (label, policy)."""
    if text is None:
        text = "inf"
    pol = GradientPolicy.parse(str(text), detach=detach)
    if pol.is_vanilla:
        return "inf", pol
    if pol.block is not None:
        return f"block={pol.block}", pol
    return str(pol.horizon), pol


def reach(policy: GradientPolicy, n_layer: int, T: int) -> str:
    """How far back the loss at j can train the computation at i under this policy."""
    if policy.is_vanilla_at(T):
        return "all earlier positions (vanilla)"
    if policy.block is not None:
        return f"exactly the positions in j's block of {policy.block}"
    h = policy.horizon
    if h == 0:
        return "only position j (myopic)"
    return f"{h} per attention hop, up to {min(n_layer * h, T - 1)} back through {n_layer} layers"


def horizon_specs(task: dict, model: dict, train: TrainConfig, seeds: list[int], policies: list[GradientPolicy]) -> list[RunSpec]:
    return [
        RunSpec(f"{pol.name}-seed{seed}", model, task, pol.to_dict(), train.to_dict(), seed)
        for pol in policies
        for seed in seeds
    ]


def horizon_curve(
    task: str | dict = "precache",
    *,
    horizons: list[str | int | None] | str = DEFAULT_HORIZONS,
    model: dict | None = None,
    train: TrainConfig | None = None,
    seeds: int | list[int] = 3,
    detach: str = "kv",
    out_dir: str | Path = "runs/horizon",
    resume: bool = False,
    overwrite: bool = False,
    workers: int = 1,
    progress: bool = True,
) -> HorizonResult:
    """Held-out loss vs gradient horizon on a task, over seeds (default training:
    :data:`myopia.presets.SYNTHETIC_TRAIN`). Writes ``results.json`` and ``config.json`` to
    ``out_dir``; ``resume=True`` continues."""
    if isinstance(horizons, str):
        horizons = [h for h in horizons.split(",") if h.strip()]
    if not horizons:
        raise ValueError("give at least one horizon, e.g. --horizons 0,1,2,4,inf")
    parsed = [parse_horizon(h, detach) for h in horizons]
    labels = [lab for lab, _ in parsed]
    dup = {lab for lab in labels if labels.count(lab) > 1}
    if dup:
        raise ValueError(f"horizon(s) {', '.join(sorted(dup))} given twice; list each horizon once")
    task_obj, task_spec = as_task(task)
    model = as_model(model)
    train = train or TrainConfig(**SYNTHETIC_TRAIN)
    seeds = as_seeds(seeds)
    n_layer = int(model.get("n_layer", 2))
    specs = horizon_specs(task_spec, model, train, seeds, [pol for _, pol in parsed])

    def summarize(runs, out: Path) -> HorizonResult:
        triv, _ = trivial_loss(task_obj, train.test_batches, train.batch_size)
        rows = []
        for label, pol in parsed:
            res = [runs[f"{pol.name}-seed{s}"] for s in seeds]
            losses = [r.test_loss for r in res]
            shares = [v / triv for v in losses] if triv else None
            T = len(res[0].test_loss_per_position)
            rows.append({
                "horizon": label,
                "kind": "vanilla" if pol.is_vanilla else ("block" if pol.block is not None else "band"),
                "policy": pol.to_dict(),
                "reach": reach(pol, n_layer, task_obj.seq_len),
                "loss_per_seed": losses,
                # a loss and its share of the trivial loss are >= 0: percentile bootstrap over seeds, whose
                # interval lies within [min, max] of the seeds (a t-interval on 3-5 seeds can cross 0).
                # Same resamples for both, so the share's interval is the loss's divided by the trivial loss.
                "loss": bootstrap_ci(losses),
                "relative_to_trivial_per_seed": shares,
                "relative_to_trivial": bootstrap_ci(shares) if shares else None,
                "per_position": [sum(r.test_loss_per_position[t] for r in res) / len(res) for t in range(T)],
            })
        return HorizonResult(
            task=task_spec, model=model, train=train.to_dict(), seeds=seeds, detach=detach, n_layer=n_layer,
            trivial_loss=triv, horizons=rows, curves={k: r.curve for k, r in runs.items()},
            warnings=above_trivial(runs, triv),
            note=(f"band horizon h is per attention hop: with {n_layer} layers the loss at j can train computations "
                  f"up to {n_layer}*h positions back; block=c is exact at any depth"),
        )

    config = {"task": task_spec, "model": model, "train": train.to_dict(), "seeds": seeds, "detach": detach,
              "horizons": labels}
    return run_measure("horizon", config, specs=specs, summarize=summarize, out_dir=out_dir, resume=resume,
                       overwrite=overwrite, workers=workers, progress=progress, desc=f"horizon {task_obj.name}")
