"""The myopia gap along a series of pretrained models: the paper's Pythia protocol.

Each local Hugging Face checkpoint of the series is fine-tuned from its pretrained weights
three ways — vanilla, strictly myopic (``detach="kv"``, exactly G(0)) and the paper's
myopic variant (``detach="hidden"``) — on the same text, with the same context length,
steps, batch size and learning rate, for every seed (seeds vary the data order; the start
is the checkpoint). Per model: held-out losses, and the gap myopic − vanilla per variant
with a 95% Student-t interval over seeds (paired by seed), against the number of parameters
(all but the input embedding). Unlike the paper (last training-batch losses, one seed),
losses are held-out means and every gap has an interval.

Each model reads the text through its own tokenizer (models of one family, like Pythia,
share one); its trivial (unigram) loss is reported beside it so losses in different
tokenizations are not compared as if they were one scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from myopia.measures.scaffold import MeasureResult, above_trivial, as_detach, as_seeds, run_measure, trivial_loss
from myopia.measures.shards import Share, share_args, train_share
from myopia.policy import GradientPolicy
from myopia.presets import FINETUNE_TRAIN
from myopia.results import mean_ci95
from myopia.runs import RunSpec
from myopia.train import TrainConfig

SERIES_DETACH = ("kv", "hidden")


@dataclass
class ModelSeriesResult(MeasureResult):
    measure = "model_series"

    task: dict  # the text task (each model's tokenizer replaces its "tokenizer")
    train: dict
    seeds: list[int]
    detach: list[str]
    # one per model, smallest first: name, path, params, params_total, trivial_loss, vanilla_loss
    # (per seed), vanilla {"mean", "ci95", ...}, variants: detach -> {policy, myopic_loss, myopic, gap, gap_per_seed}
    models: list[dict]


def series_names(paths: list[str | Path]) -> list[str]:
    """Run-key names of the models: directory names, made unique with their position."""
    names = [Path(p).expanduser().resolve().name or f"model{i}" for i, p in enumerate(paths)]
    return [f"{n}-{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def model_series(
    models: list[str | Path],
    data: str | Path,
    *,
    seq_len: int = 64,
    seeds: int | list[int] = 3,
    detach: str | list[str] = SERIES_DETACH,
    train: TrainConfig | None = None,
    out_dir: str | Path = "runs/series",
    workers: int = 1,
    progress: bool = True,
    shard: str | tuple[int, int] | None = None,
    collect: bool = False,
) -> ModelSeriesResult | Share:
    """Fine-tune every model of ``models`` (local HF directories) vanilla and myopic on
    ``data`` and report the gap per model against its size.

    ``train`` defaults to :data:`myopia.presets.FINETUNE_TRAIN` (the same as ``myopia gap
    --model``). A rerun continues the directory (finished runs are reused); another config
    is refused. ``shard``/``collect`` spread the runs over jobs as for the compute sweep
    (:mod:`myopia.measures.shards`; work per run counted as the model's parameters).
    """
    from myopia.data import make_task
    from myopia.hf import hf_model_spec

    if len(models) < 2:
        raise ValueError(f"a model series needs at least 2 models, got {len(models)}; give --models DIR1,DIR2,...")
    seeds, detach = as_seeds(seeds), as_detach(detach)
    shard = share_args(shard, collect)
    train = train or TrainConfig(**FINETUNE_TRAIN)
    names = series_names(models)
    members = []  # (name, task spec, model spec)
    for name, path in zip(names, models):
        task_spec, model_spec = hf_model_spec({"name": "text", "data": str(data), "seq_len": seq_len}, model=path)
        members.append((name, make_task(**task_spec).to_dict(), model_spec))
    specs = series_specs(members, seeds, detach, train)

    def summarize(runs, out: Path) -> ModelSeriesResult:
        rows = [summarize_member(name, task_spec, model_spec, runs, seeds, detach, train)
                for name, task_spec, model_spec in members]
        rows.sort(key=lambda r: r["params"])
        owner = {s.key: s.extra["model"] for s in specs}
        warnings = [w for r in rows
                    for w in above_trivial({k: v for k, v in runs.items() if owner[k] == r["name"]}, r["trivial_loss"])]
        return ModelSeriesResult(task={"name": "text", "data": str(data), "seq_len": seq_len}, train=train.to_dict(),
                                 seeds=seeds, detach=detach, models=rows, warnings=warnings)

    config = {"models": [m[2] for m in members], "names": names, "data": str(data), "seq_len": seq_len,
              "seeds": seeds, "detach": detach, "train": train.to_dict()}
    if shard is not None:
        size = {name: _sizes(model_spec, make_task(**task_spec))[1] for name, task_spec, model_spec in members}
        cost = {s.key: float(size[s.extra["model"]]) for s in specs}
        return train_share("model_series", config, specs, cost, shard, out_dir, workers=workers, progress=progress)
    return run_measure("model_series", config, specs=specs, summarize=summarize, out_dir=out_dir, resume=True,
                       workers=workers, progress=progress, desc="model series", collect=collect)


def series_specs(members: list[tuple[str, dict, dict]], seeds: list[int], detach: list[str],
                 train: TrainConfig) -> list[RunSpec]:
    """Vanilla and every myopic variant of every model and seed; all from the checkpoint."""
    policies = [GradientPolicy(), *(GradientPolicy(horizon=0, detach=d) for d in detach)]
    return [RunSpec(f"{name}-{pol.name}-seed{seed}", model_spec, task_spec, pol.to_dict(), train.to_dict(), seed,
                    extra={"model": name})
            for name, task_spec, model_spec in members for seed in seeds for pol in policies]


def summarize_member(name: str, task_spec: dict, model_spec: dict, runs: dict, seeds: list[int],
                     detach: list[str], train: TrainConfig) -> dict:
    """One model's row: size, trivial loss, vanilla and myopic losses, gaps with CIs over seeds."""
    from myopia.data import make_task
    from myopia.hf import load_config

    task = make_task(**task_spec)
    van = [runs[f"{name}-vanilla-seed{s}"].test_loss for s in seeds]
    variants = {}
    for d in detach:
        pol = GradientPolicy(horizon=0, detach=d).name
        myo = [runs[f"{name}-{pol}-seed{s}"].test_loss for s in seeds]
        gaps = [m - v for m, v in zip(myo, van)]
        variants[d] = {"policy": pol, "myopic_loss": myo, "myopic": mean_ci95(myo), "gap": mean_ci95(gaps),
                       "gap_per_seed": gaps}
    params, total = _sizes(model_spec, task)
    triv, _ = trivial_loss(task, train.test_batches, train.batch_size)
    return {"name": name, "path": model_spec["path"], "family": load_config(model_spec["path"]).model_type,
            "params": params, "params_total": total, "trivial_loss": triv, "vanilla_loss": van,
            "vanilla": mean_ci95(van), "variants": variants}


def _sizes(model_spec: dict, task) -> tuple[int, int]:
    """(parameters without the input embedding, all parameters) of a model spec."""
    from myopia.runs import build_model

    model = build_model(model_spec, task, 0)
    return model.num_params(), model.num_params(non_embedding=False)
