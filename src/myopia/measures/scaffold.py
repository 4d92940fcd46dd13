"""The one path every measure takes.

A measure is two things: *which training runs* it needs (:class:`~myopia.runs.RunSpec`
list, possibly empty) and *how to summarise* them into a typed result. Everything else
happens here, once, in the same order for every measure:

1. the output directory is prepared (refused if it holds something else; ``resume``
   keeps it, ``overwrite`` replaces it);
2. ``config.json`` is written — a resumed directory must hold the same config;
3. the runs are trained (in parallel worker processes; finished runs are reused and
   interrupted ones resume from their checkpoint);
4. ``summarize(runs, out)`` builds the result;
5. the result gets its ``provenance`` (versions, git revision, host) and lands in
   ``results.json``.

A measure never draws: figures are made by :mod:`myopia.report` from the result (the
commands and ``myopia report`` call it). Adding a measure is one file in ``measures/``
that calls :func:`run_measure`, plus one command file (see docs/architecture.md).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, ClassVar

import torch

from myopia import distributed
from myopia.results import (
    atomic_write_json, check_config, prepare_out_dir, provenance, replacement_dir, swap_in, write_config,
)
from myopia.runs import RunSpec, run_all, validate_specs
from myopia.train import RunResult, TrainConfig, finished_run, held_out_losses


@dataclass
class MeasureResult:
    """Base of every measure's result: ``measure`` names it (and its figures in
    :mod:`myopia.report`), ``provenance`` says what made it."""

    measure: ClassVar[str] = ""
    warnings: list[str] = field(default_factory=list, kw_only=True)  # read before quoting a number
    provenance: dict = field(default_factory=dict, kw_only=True)

    def to_dict(self) -> dict:
        return {"measure": self.measure, **asdict(self)}


Summarize = Callable[[dict[str, RunResult], Path], MeasureResult]


@dataclass
class Plan:
    """One measure before it runs: its name, config, runs and summary — what
    :func:`run_measure` needs besides a directory. A measure function that builds its plan
    separately (``gap_plan``) lets a caller train the runs of several measures together
    (:func:`train_plans`) before each is summarised with :func:`run_plan`."""

    name: str
    config: dict
    specs: list[RunSpec]
    summarize: Summarize
    desc: str | None = None


def run_plan(plan: Plan, out_dir: str | Path, **run_args) -> MeasureResult | None:
    """:func:`run_measure` of a :class:`Plan` (``run_args``: resume, overwrite, workers, ...)."""
    return run_measure(plan.name, plan.config, specs=plan.specs, summarize=plan.summarize, out_dir=out_dir,
                       desc=plan.desc, **run_args)


def train_plans(plans: dict[Path, Plan], *, workers: int = 1, progress: bool = True, desc: str = "runs") -> None:
    """Train the runs of several measures in one pool of workers, each into its own directory.

    With one pool per measure, the workers idle while a measure's last run finishes alone;
    in one pool the next measure's runs fill them. Every directory is checked before any is
    written (a new one is created, one holding the same measure and config is resumed,
    anything else is refused), then the runs go longest first. Nothing is summarised here:
    :func:`run_plan` with ``resume=True`` then finds every run finished and summarises it.
    """
    plans = {Path(out): plan for out, plan in plans.items()}
    for out, plan in plans.items():
        validate_specs(plan.specs)
        if out.exists() and (out / "config.json").exists():
            check_config(out, {"measure": plan.name, **plan.config})
        elif out.exists() and (not out.is_dir() or any(out.iterdir())):
            prepare_out_dir(out, resume=True, overwrite=False, measure=plan.name)  # raises: not this measure
    for out, plan in plans.items():
        _open_share_dir(out, plan.name, plan.config)
    root = Path(os.path.commonpath([str(out.absolute()) for out in plans]))
    specs = [replace(s, key=str((out.absolute() / "runs" / s.key).relative_to(root)))
             for out, plan in plans.items() for s in plan.specs]
    specs.sort(key=lambda s: -run_cost(s))  # stable: equal costs keep the measures' order
    run_all(specs, root, workers=workers, progress=progress, desc=desc)
    distributed.barrier()


def run_cost(spec: RunSpec) -> float:
    """A run's training work in token-steps (steps x batch x sequence length): the order in
    which :func:`train_plans` hands runs out (longest first, so no long run starts last)."""
    train = TrainConfig(**spec.train)
    return train.steps * train.batch_size * spec.task.get("seq_len", 1)


def run_measure(
    name: str,
    config: dict,
    *,
    specs: list[RunSpec],
    summarize: Summarize,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    workers: int = 1,
    progress: bool = True,
    desc: str | None = None,
    share: list[RunSpec] | None = None,
    collect: bool = False,
) -> MeasureResult | None:
    """Check the specs, prepare ``out_dir``, write its config, train the specs, summarise and
    write results.json.

    A measure's runs may be spread over several processes or machines writing into one
    ``out_dir`` (a shared filesystem): ``share`` trains only those specs (one share of the
    runs, e.g. one shard of a sweep) and returns None — no summary, no results.json, and a
    failure never removes the directory another share may be writing into. ``collect``
    trains nothing: every spec must have finished (:class:`UnfinishedRuns` names the others)
    and the measure is summarised as if it had trained them itself.

    Nothing already written is lost: every setting, model and file of the specs is checked
    before a directory is created; ``overwrite`` builds the new result in a sibling
    directory and swaps it in only once it is complete (a failure leaves the old result
    untouched); a failure before any run has made progress removes the directory it created.
    ``workers``: parallel training processes (1: in this process, the default for the
    Python API so scripts and notebooks need no ``__main__`` guard; 0: one per core).
    """
    validate_specs(specs)
    out = Path(out_dir)
    if collect:
        return _collect(name, config, specs, summarize, out)
    if share is not None:
        _train_share(name, config, share, out, workers=workers, progress=progress, desc=desc)
        return None
    # under torchrun rank 0 prepares the directory and every rank gets its outcome (or its error)
    work, had_content = distributed.main_first(lambda: _prepare_work_dir(out, name, resume, overwrite))
    replacing = work != out
    main = distributed.is_main()
    try:
        distributed.main_first(lambda: write_config(work, {"measure": name, **config}))
        runs = run_all(specs, work / "runs", workers=workers, progress=progress, desc=desc or name) if specs else {}
        result = summarize(runs, work)
        result.provenance = provenance()
        if main:
            atomic_write_json(work / "results.json", result.to_dict())
    except BaseException as e:
        if replacing and main:
            shutil.rmtree(work, ignore_errors=True)
            _add_note(e, f"the previous result in {out} is untouched")
        elif not had_content and main and not _made_progress(out):
            shutil.rmtree(out, ignore_errors=True)
        raise
    if replacing and main:
        swap_in(work, out)
    distributed.barrier()
    return result


def _prepare_work_dir(out: Path, name: str, resume: bool, overwrite: bool) -> tuple[Path, bool]:
    """(directory the measure writes into, did ``out`` hold something). An overwritten
    result is built beside the old one (``.NAME.new``) and swapped in when complete."""
    prepare_out_dir(out, resume=resume, overwrite=overwrite, measure=name)  # checks; creates out if missing
    had_content = any(out.iterdir())
    if not (overwrite and had_content):
        return out, had_content
    return replacement_dir(out), had_content


class UnfinishedRuns(ValueError):
    """Collecting a measure whose runs have not all finished."""


def _train_share(name: str, config: dict, share: list[RunSpec], out: Path, **run_args) -> None:
    """Train one share of a measure's runs into ``out`` (created, or resumed: the config must match)."""
    _open_share_dir(out, name, config)
    if share:
        run_all(share, out / "runs", **run_args)
    distributed.barrier()


def _open_share_dir(out: Path, name: str, config: dict) -> None:
    """Create ``out`` for measure ``name`` or resume it (its config must match), on rank 0."""
    distributed.main_first(lambda: (prepare_out_dir(out, resume=True, overwrite=False, measure=name),
                                    write_config(out, {"measure": name, **config})))


def _collect(name: str, config: dict, specs: list[RunSpec], summarize: Summarize, out: Path) -> MeasureResult:
    """Summarise finished runs without training: the directory must hold this measure's
    config, and every run its result."""
    if not (out / "config.json").is_file():
        raise UnfinishedRuns(f"{out} holds no {name} to collect (no config.json); train its runs first")
    distributed.main_first(lambda: write_config(out, {"measure": name, **config}))  # the same config, or refused
    runs = {s.key: finished_run(out / "runs" / s.key) for s in specs}
    missing = [key for key, run in runs.items() if run is None]
    if missing:
        raise UnfinishedRuns(
            f"{len(missing)} of {len(specs)} runs in {out / 'runs'} are not finished: {', '.join(missing)}; "
            f"train them (the shards that own them), then collect again"
        )
    result = summarize(runs, out)
    result.provenance = provenance()
    if distributed.is_main():
        atomic_write_json(out / "results.json", result.to_dict())
    distributed.barrier()
    return result


def _made_progress(out: Path) -> bool:
    """Did any run of ``out`` finish or checkpoint (worth keeping for --resume)?"""
    runs = out / "runs"
    return runs.is_dir() and any(
        (d / "result.json").exists() or (d / "checkpoint").exists() for d in runs.iterdir() if d.is_dir()
    )


def _add_note(e: BaseException, note: str) -> None:
    if isinstance(e, (ValueError, OSError, RuntimeError)) and e.args and isinstance(e.args[0], str):
        e.args = (f"{e.args[0]} ({note})", *e.args[1:])


# ------------------------------------------------------------------ argument normalisation
def as_task(task: str | dict):
    """(task object, its full spec) from a name or ``make_task`` arguments; building the task
    validates it before anything is written. ``make_task(**spec)`` rebuilds the same task."""
    from myopia.data import make_task

    task_obj = make_task(**({"name": task} if isinstance(task, str) else dict(task)))
    return task_obj, task_obj.to_dict()


def as_model(model: dict | None) -> dict:
    """A model spec with the built-in GPT's defaults (:data:`myopia.presets.DEFAULT_MODEL`)
    filled in; other kinds (``{"kind": "hf", ...}``) are kept as they are."""
    from myopia.presets import DEFAULT_MODEL

    model = dict(model or {})
    return {**DEFAULT_MODEL, **model} if model.get("kind", "gpt") == "gpt" else model


def as_seeds(seeds: int | list[int]) -> list[int]:
    """``3`` -> [0, 1, 2]; a list is kept. At least one seed."""
    out = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not out:
        raise ValueError("give at least one seed (--seeds 1 or more)")
    return out


def as_detach(detach: str | list[str]) -> list[str]:
    """Myopic variant names (``"kv"``, ``"hidden"``, or a list / comma-separated), validated."""
    from myopia.policy import GradientPolicy

    names = [d.strip() for d in detach.split(",")] if isinstance(detach, str) else list(detach)
    if not names:
        raise ValueError("give at least one myopic variant: kv (strict) or hidden (the paper's)")
    for d in names:
        GradientPolicy(horizon=0, detach=d)  # validates the name
    if len(set(names)) != len(names):  # one variant twice would train the same runs twice under one name
        raise ValueError(f"--detach lists a variant twice: {names}")
    return names


@torch.no_grad()
def trivial_loss(task, batches: int, batch_size: int) -> tuple[float, list[float]]:
    """Mean and per-position loss of the task's reference predictor on the test batches
    (predict 0 for the window sum; the unigram model for text)."""
    _, per_pos, mean = held_out_losses(task, task.trivial_loss, split="test", batches=batches, batch_size=batch_size)
    return mean, per_pos


def above_trivial(runs: dict[str, RunResult], trivial: float) -> list[str]:
    """A warning for every run that ended above the trivial predictor's loss: it learned
    nothing, and a gap between such runs says nothing about pre-caching."""
    return [
        f"run {key} ended at held-out loss {r.test_loss:.4f}, above the trivial loss {trivial:.4f}: it learned "
        f"nothing; train longer (--steps) or change the learning rate (--lr) before reading its numbers"
        for key, r in runs.items() if r.test_loss > trivial
    ]


def mean_lists(rows: list[list[float]]) -> list[float]:
    """Element-wise mean of equally long lists (per-position curves over seeds)."""
    return [sum(col) / len(col) for col in zip(*rows)]
