"""The myopia gap: L(myopic-trained) - L(vanilla-trained).

Same architecture, initialisation (seed), data order and budget; only the gradient policy
differs. Reported per seed (paired differences), as a mean with a 95% Student-t interval
over seeds, and per position. Several myopic variants (``detach="kv"`` and ``"hidden"``)
can share one set of vanilla runs; the first variant is the headline ``myopic_loss``.

Optional additions, all from the same seeds and data order:

* ``baseline="bigram"``: the transformer-bigram reference (the same model with every
  off-diagonal key/value zero, so the past is not read at all; ``GPTConfig(bigram=True)``),
  trained with the ordinary gradient. ``bigram_loss - vanilla_loss`` is what reading the
  past is worth at all, the scale against which a myopia gap is read.
* for a task with an ``accuracy`` hook (exact match of an answer), each policy's held-out
  accuracy per seed with a Wilson interval, and over seeds with a bounded two-level
  bootstrap interval;
* for a task with ``named_positions`` (an answer, a line break, a rhyming ending), the gap
  averaged over each group of positions, with a CI over seeds.

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
    MeasureResult, Plan, above_trivial, as_detach, as_model, as_seeds, as_task, mean_lists, run_plan, trivial_loss,
)
from myopia.policy import GradientPolicy
from myopia.presets import train_preset
from myopia.results import mean_ci95, proportion_over_seeds, wilson95
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
    baseline: str | None = None  # "bigram": the transformer-bigram reference was trained too
    bigram_loss: list[float] = field(default_factory=list)  # held-out, one per seed (baseline="bigram")
    bigram_per_position: list[float] = field(default_factory=list)
    past_benefit: dict = field(default_factory=dict)  # bigram - vanilla over seeds (paired): what reading the past is worth
    accuracy: dict = field(default_factory=dict)  # run name -> per-seed and over-seed exact-match accuracy
    position_gaps: dict = field(default_factory=dict)  # group -> {"positions", run name -> {"gap", "loss", ...}}
    # tasks with a known feature: policy name -> {"per_seed": [{layer: R²}], "mean": {layer: R²}, "ci95": {layer: ..}}
    feature_r2: dict = field(default_factory=dict)
    # run name -> held-out loss, mean over seeds, and that mean / trivial loss: the "0.0191 (5%)"
    # of the printed tables
    mean_loss: dict = field(default_factory=dict)
    share_of_trivial: dict = field(default_factory=dict)

    def relative(self, loss: float) -> float:
        return loss / self.trivial_loss if self.trivial_loss else float("nan")


BASELINES = ("bigram",)


def gap_specs(task: dict, model: dict, train: TrainConfig, seeds: list[int], detach: list[str],
              baseline: str | None = None) -> list[RunSpec]:
    specs = []
    for seed in seeds:
        tcfg = {**train.to_dict()}
        specs.append(RunSpec(f"vanilla-seed{seed}", model, task, GradientPolicy().to_dict(), tcfg, seed))
        for d in detach:
            pol = GradientPolicy(horizon=0, detach=d)
            specs.append(RunSpec(f"{pol.name}-seed{seed}", model, task, pol.to_dict(), tcfg, seed))
        if baseline == "bigram":  # same init and data; the forward reads no past, the policy is moot
            specs.append(RunSpec(f"bigram-seed{seed}", {**model, "bigram": True}, task, GradientPolicy().to_dict(),
                                 tcfg, seed))
    return specs


def as_baseline(baseline: str | None, model: dict) -> str | None:
    if baseline is None:
        return None
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; use one of {', '.join(BASELINES)}")
    if model.get("kind", "gpt") != "gpt":
        raise ValueError("the bigram baseline is a variant of the built-in GPT; drop --baseline for an HF model")
    return baseline


def myopia_gap(
    task: str | dict = "precache",
    *,
    out_dir: str | Path = "runs/gap",
    resume: bool = False,
    overwrite: bool = False,
    workers: int = 1,
    progress: bool = True,
    **settings,
) -> GapResult:
    """Train vanilla and myopic models for each seed and measure the gap on held-out data.

    ``task`` and ``settings`` (``model``, ``train``, ``seeds``, ``detach``, ``baseline``) are
    those of :func:`gap_plan`. Writes ``results.json`` and ``config.json`` to ``out_dir``
    (``myopia.report.draw`` makes the figures); each run keeps its own checkpoint directory,
    so ``resume=True`` continues a killed measurement.
    """
    plan = gap_plan(task, **settings)
    return run_plan(plan, out_dir, resume=resume, overwrite=overwrite, workers=workers, progress=progress)


def gap_plan(
    task: str | dict = "precache",
    *,
    model: dict | None = None,
    train: TrainConfig | None = None,
    seeds: int | list[int] = 3,
    detach: str | list[str] = "kv",
    baseline: str | None = None,
) -> Plan:
    """The runs and summary of :func:`myopia_gap` without a directory, so several gaps can
    train in one pool (:func:`myopia.measures.scaffold.train_plans`).

    ``task``: a task name or ``make_task`` keyword arguments. ``model``: a model spec
    (default: the built-in GPT, :data:`myopia.presets.DEFAULT_MODEL`); ``train``: default
    :func:`myopia.presets.train_preset` of the model (the same as ``myopia gap``);
    ``seeds``: a count or a list; ``detach``: the myopic variants (``"kv"`` strict,
    ``"hidden"`` the paper's; the first is the headline). ``baseline="bigram"`` also trains
    the transformer-bigram reference (built-in GPT only).
    """
    task_obj, task_spec = as_task(task)
    model = as_model(model)
    train = train or TrainConfig(**train_preset(model))
    seeds, detach = as_seeds(seeds), as_detach(detach)
    baseline = as_baseline(baseline, model)
    specs = gap_specs(task_spec, model, train, seeds, detach, baseline)

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
            # a vanilla run that learned nothing makes the gap meaningless; a myopic (or bigram) run at the
            # trivial loss next to a vanilla run that learned is the measured effect, not a failure
            warnings=above_trivial({k: r for k, r in runs.items() if k.startswith("vanilla-")}, triv),
        )
        names = ["vanilla"] + [v["policy"] for v in variants.values()]
        if baseline:
            big = [runs[f"bigram-seed{s}"] for s in seeds]
            result.baseline = baseline
            result.bigram_loss = [b.test_loss for b in big]
            result.bigram_per_position = mean_lists([b.test_loss_per_position for b in big])
            result.past_benefit = mean_ci95([b.test_loss - v.test_loss for b, v in zip(big, van)])
            names.append("bigram")
        by_name = {name: [runs[f"{name}-seed{s}"] for s in seeds] for name in names}
        result.accuracy = accuracy_summary(by_name)
        result.mean_loss = {name: sum(r.test_loss for r in rs) / len(rs) for name, rs in by_name.items()}
        result.share_of_trivial = {name: result.relative(loss) for name, loss in result.mean_loss.items()}
        if hasattr(task_obj, "named_positions"):
            result.position_gaps = position_gaps(task_obj.named_positions(), by_name)
        if not task_obj.regression:
            result.token_gaps = token_gaps(task_obj, specs, out / "runs", head["policy"], train)
        if hasattr(task_obj, "feature"):
            result.feature_r2 = feature_probes(task_obj, specs, out / "runs")
        return result

    config = {"task": task_spec, "model": model, "train": train.to_dict(), "seeds": seeds, "detach": detach}
    if baseline:  # only when asked: a directory measured without one keeps the config it was made with
        config["baseline"] = baseline
    return Plan("gap", config, specs, summarize, desc=f"gap {task_obj.name}")


def accuracy_summary(by_name: dict[str, list]) -> dict:
    """Run name -> exact-match accuracy per seed (Wilson interval over test sequences) and
    over seeds (two-level bootstrap); empty when the task has no accuracy hook."""
    out = {}
    for name, runs in by_name.items():
        if any(r.test_accuracy is None for r in runs):
            return {}
        correct = [r.test_accuracy["correct"] for r in runs]
        n = [r.test_accuracy["n"] for r in runs]
        out[name] = {
            **proportion_over_seeds(correct, n),
            "seeds": [{"seed": r.seed, "correct": k, "n": m, "accuracy": k / m, "wilson95": wilson95(k, m)}
                      for r, k, m in zip(runs, correct, n)],
        }
    return out


def position_gaps(groups: dict[str, list[int]], by_name: dict[str, list]) -> dict:
    """Per group of positions: each run's mean loss there and its paired gap to vanilla
    (mean over the group's positions, then mean and 95% CI over seeds)."""
    van = by_name["vanilla"]

    def at(run, positions):
        return sum(run.test_loss_per_position[t] for t in positions) / len(positions)

    out = {}
    for group, positions in groups.items():
        row = {"positions": list(positions), "vanilla": {"loss": mean_ci95([at(v, positions) for v in van])}}
        for name, runs in by_name.items():
            if name != "vanilla":
                row[name] = {"loss": mean_ci95([at(r, positions) for r in runs]),
                             "gap": mean_ci95([at(r, positions) - at(v, positions) for r, v in zip(runs, van)])}
        out[group] = row
    return out


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
    scored = [(y >= 0).reshape(-1) for _, y in batches]  # targets a task leaves out of the loss are negative
    for (_, y), keep in zip(batches, scored):
        counts.index_add_(0, y.reshape(-1)[keep], torch.ones(int(keep.sum()), dtype=torch.float64))
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
            for (x, y), keep in zip(batches, scored):
                loss = task.loss(default_forward(model, x, GradientPolicy()), y).double()  # (B, T)
                total.index_add_(0, y.reshape(-1)[keep], loss.reshape(-1)[keep])
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

