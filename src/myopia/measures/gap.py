"""The myopia gap: L(myopic-trained) - L(vanilla-trained).

Same architecture, initialisation (seed), data order and budget; only the gradient policy
differs. Reported per seed (paired differences), as a mean with a 95% Student-t interval
over seeds, and per position. Several myopic variants (``detach="kv"`` and ``"hidden"``)
can share one set of vanilla runs; the first variant is the headline ``myopic_loss``.

When the task defines a known feature (``task.feature(x)``, e.g. sin(a·x_t) on
``precache``), every trained model also gets the held-out R² of a ridge probe for it at
each layer (:func:`myopia.measures.probe.feature_r2`): the loss says *whether* a model
learned the task, the probe *how* — whether the feature is there at position t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from myopia.measures.scaffold import (
    MeasureResult, as_detach, as_model, as_seeds, as_task, mean_lists, run_measure, trivial_loss,
)
from myopia.policy import GradientPolicy
from myopia.presets import SYNTHETIC_TRAIN
from myopia.results import mean_ci95
from myopia.runs import RunSpec
from myopia.train import TrainConfig


@dataclass
class GapResult(MeasureResult):
    measure = "gap"

    task: dict
    model: dict
    train: dict
    seeds: list[int]
    detach: list[str]
    trivial_loss: float
    trivial_loss_per_position: list[float]
    vanilla_loss: list[float]  # held-out, one per seed
    myopic_loss: list[float]  # headline myopic variant (detach[0]), one per seed
    gap: dict  # {"mean", "ci95": [lo, hi] | None, "n", "std"} over seeds (paired)
    gap_per_seed: list[float]
    per_position_gap: list[float]  # mean over seeds, one per position
    per_position_gap_ci95: list[list[float] | None]
    vanilla_per_position: list[float]
    myopic_per_position: list[float]
    variants: dict = field(default_factory=dict)  # detach -> {"myopic_loss", "gap", ...}
    curves: dict = field(default_factory=dict)  # run key -> [{"step", "train_loss", "val_loss"?}]
    token_gaps: dict = field(default_factory=dict)  # token tasks: target tokens with the largest/smallest gap
    # tasks with a known feature: policy name -> {"per_seed": [{layer: R²}], "mean": {layer: R²}, "ci95": {layer: ..}}
    feature_r2: dict = field(default_factory=dict)

    def relative(self, loss: float) -> float:
        return loss / self.trivial_loss if self.trivial_loss else float("nan")


def gap_specs(task: dict, model: dict, train: TrainConfig, seeds: list[int], detach: list[str]) -> list[RunSpec]:
    specs = []
    for seed in seeds:
        tcfg = {**train.to_dict()}
        specs.append(RunSpec(f"vanilla-seed{seed}", model, task, GradientPolicy().to_dict(), tcfg, seed))
        for d in detach:
            pol = GradientPolicy(horizon=0, detach=d)
            specs.append(RunSpec(f"{pol.name}-seed{seed}", model, task, pol.to_dict(), tcfg, seed))
    return specs


def myopia_gap(
    task: str | dict = "precache",
    *,
    model: dict | None = None,
    train: TrainConfig | None = None,
    seeds: int | list[int] = 3,
    detach: str | list[str] = "kv",
    out_dir: str | Path = "runs/gap",
    resume: bool = False,
    overwrite: bool = False,
    workers: int = 0,
    progress: bool = True,
) -> GapResult:
    """Train vanilla and myopic models for each seed and measure the gap on held-out data.

    ``task``: a task name or ``make_task`` keyword arguments. ``model``: a model spec
    (default: the built-in GPT, :data:`myopia.presets.DEFAULT_MODEL`); ``train``: default
    :data:`myopia.presets.SYNTHETIC_TRAIN`. Writes ``results.json`` and ``config.json`` to
    ``out_dir`` (``myopia.report.draw`` makes the figures); each run keeps its own
    checkpoint directory, so ``resume=True`` continues a killed measurement.
    """
    task_obj, task_spec = as_task(task)
    model = as_model(model)
    train = train or TrainConfig(**SYNTHETIC_TRAIN)
    seeds, detach = as_seeds(seeds), as_detach(detach)
    specs = gap_specs(task_spec, model, train, seeds, detach)

    def summarize(runs, out: Path) -> GapResult:
        triv, triv_pos = trivial_loss(task_obj, train.test_batches, train.batch_size)
        van = [runs[f"vanilla-seed{s}"] for s in seeds]
        variants = {}
        for d in detach:
            name = GradientPolicy(horizon=0, detach=d).name
            myo = [runs[f"{name}-seed{s}"] for s in seeds]
            per_seed = [m.test_loss - v.test_loss for m, v in zip(myo, van)]
            T = len(van[0].test_loss_per_position)
            pos = [[m.test_loss_per_position[t] - v.test_loss_per_position[t] for m, v in zip(myo, van)]
                   for t in range(T)]
            pos_stats = [mean_ci95(p) for p in pos]
            variants[d] = {
                "policy": name,
                "myopic_loss": [m.test_loss for m in myo],
                "gap": mean_ci95(per_seed),
                "gap_per_seed": per_seed,
                "per_position_gap": [s["mean"] for s in pos_stats],
                "per_position_gap_ci95": [s["ci95"] for s in pos_stats],
                "myopic_per_position": mean_lists([m.test_loss_per_position for m in myo]),
            }
        head = variants[detach[0]]
        result = GapResult(
            task=task_spec, model=model, train=train.to_dict(), seeds=seeds, detach=detach,
            trivial_loss=triv, trivial_loss_per_position=triv_pos,
            vanilla_loss=[v.test_loss for v in van], myopic_loss=head["myopic_loss"],
            gap=head["gap"], gap_per_seed=head["gap_per_seed"],
            per_position_gap=head["per_position_gap"], per_position_gap_ci95=head["per_position_gap_ci95"],
            vanilla_per_position=mean_lists([v.test_loss_per_position for v in van]),
            myopic_per_position=head["myopic_per_position"],
            variants=variants, curves={k: r.curve for k, r in runs.items()},
        )
        if not task_obj.regression:
            result.token_gaps = token_gaps(task_obj, specs, out / "runs", head["policy"], train)
        if hasattr(task_obj, "feature"):
            result.feature_r2 = feature_probes(task_obj, specs, out / "runs")
        return result

    config = {"task": task_spec, "model": model, "train": train.to_dict(), "seeds": seeds, "detach": detach}
    return run_measure("gap", config, specs=specs, summarize=summarize, out_dir=out_dir, resume=resume,
                       overwrite=overwrite, workers=workers, progress=progress, desc=f"gap {task_obj.name}")


def feature_probes(task, specs: list[RunSpec], runs_dir: Path) -> dict:
    """Held-out R² of the task-feature probe at every layer, per trained model, grouped by
    policy (seeds in the order of ``specs``) with the mean and a 95% CI over seeds."""
    from myopia.measures.probe import feature_r2
    from myopia.runs import load_checkpoint_model

    per_policy: dict[str, list[dict]] = {}
    for spec in specs:
        ckpt = runs_dir / spec.key / "checkpoint" / "model.safetensors"
        model = load_checkpoint_model(ckpt, spec.model, task, spec.seed)
        per_policy.setdefault(GradientPolicy.from_dict(spec.policy).name, []).append(feature_r2(model, task))
    out = {}
    for name, rows in per_policy.items():
        stats = {layer: mean_ci95([r[layer] for r in rows], bounds=(float("-inf"), 1.0)) for layer in rows[0]}
        out[name] = {"per_seed": rows, "mean": {k: v["mean"] for k, v in stats.items()},
                     "ci95": {k: v["ci95"] for k, v in stats.items()}}
    return out


@torch.no_grad()
def token_gaps(task, specs: list[RunSpec], runs_dir: Path, myopic: str, train: TrainConfig,
               top: int = 12, min_count: int = 20) -> dict:
    """Gap by target token: mean over seeds of the mean (myopic - vanilla) test loss at the
    positions whose next token is that token; the ``top`` largest and smallest among tokens
    seen at least ``min_count`` times in the test batches."""
    from myopia.runs import load_checkpoint_model
    from myopia.train import default_forward

    by_key = {s.key: s for s in specs}
    batches = [task.batch("test", i, train.batch_size) for i in range(train.test_batches)]
    counts = torch.zeros(task.vocab_size, dtype=torch.float64)
    for _, y in batches:
        counts.index_add_(0, y.reshape(-1), torch.ones(y.numel(), dtype=torch.float64))
    per_seed = []
    for s in sorted({sp.seed for sp in specs}):
        losses = {}
        for name in ("vanilla", myopic):
            spec = by_key[f"{name}-seed{s}"]
            ckpt = runs_dir / spec.key / "checkpoint" / "model.safetensors"
            if not ckpt.exists():
                return {}
            try:
                model = load_checkpoint_model(ckpt, spec.model, task, spec.seed)
            except (RuntimeError, KeyError, ValueError) as e:  # a model kind that saves its weights differently
                return {"skipped": f"checkpoint {ckpt} did not load: {str(e).splitlines()[0]}"}
            model.eval()
            total = torch.zeros(task.vocab_size, dtype=torch.float64)
            for x, y in batches:
                loss = task.loss(default_forward(model, x, GradientPolicy()), y).double()  # (B, T)
                total.index_add_(0, y.reshape(-1), loss.reshape(-1))
            losses[name] = total / counts.clamp(min=1)
        per_seed.append(torch.stack([losses["vanilla"], losses[myopic]]))  # (2, V)
    mean = torch.stack(per_seed).mean(0)  # (2, V)
    gap = mean[1] - mean[0]
    ok = (counts >= min_count).nonzero().flatten()
    order = ok[gap[ok].argsort(descending=True)]

    def rows(ids) -> list[dict]:
        return [{"token": int(t), "text": task.decode([int(t)]), "count": int(counts[t]),
                 "gap": float(gap[t]), "vanilla_loss": float(mean[0, t]), "myopic_loss": float(mean[1, t])}
                for t in ids]

    return {"policy": myopic, "min_count": min_count, "largest": rows(order[:top]), "smallest": rows(order.flip(0)[:top])}

