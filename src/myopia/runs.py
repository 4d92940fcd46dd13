"""Many training runs: each a plain, picklable spec, run in parallel worker processes.

A :class:`RunSpec` says everything a run needs — model, task, policy, training config,
seed — as plain data, so a worker process (or a later session resuming the directory)
can rebuild it. Each run lives in ``out_dir/<key>/``; finished runs are reused and
unfinished ones resume from their last checkpoint (see :func:`myopia.train.train`).

Measures (gap, horizon, sweep) describe their runs as specs and call :func:`run_all`.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from myopia.policy import GradientPolicy
from myopia.train import RunResult, TrainConfig, finished_run, train


@dataclass
class RunSpec:
    key: str  # directory name under the measure's output dir, e.g. "vanilla-seed0"
    model: dict  # {"kind": "gpt", **GPTConfig fields}; other kinds are added by myopia.hf
    task: dict  # keyword arguments of myopia.data.make_task
    policy: dict  # GradientPolicy fields
    train: dict  # TrainConfig fields
    seed: int = 0
    # Free-form labels of the measure (sizes, modes), plus two keys run_one acts on:
    # "init_from": key of a finished run in the same directory whose weights this run starts
    # from (a fine-tune); "objective": {"fn": "module:factory", "args": {...}}, where
    # factory(task, seed=..., **args) returns the train() objective (see myopia.train).
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(spec: dict, task, seed: int) -> torch.nn.Module:
    """Build (and seed) the model a spec names; the shape of its input/output follows the task."""
    spec = dict(spec)
    kind = spec.pop("kind", "gpt")
    torch.manual_seed(seed)
    if kind == "gpt":
        from myopia.model import GPT, GPTConfig

        if task.regression:
            spec.update(n_in=task.n_in, n_out=task.n_out)
        else:
            spec.update(n_in=0, n_out=0, vocab_size=task.vocab_size)
        spec.setdefault("block_size", task.seq_len)
        if spec["block_size"] < task.seq_len:
            raise ValueError(
                f"model block_size {spec['block_size']} is shorter than the task's sequence length {task.seq_len}"
            )
        return GPT(GPTConfig(**spec))
    if kind == "hf":  # a Hugging Face causal LM: {"path": DIR} (from a checkpoint) or {"config": {...}}
        from myopia.hf import build_hf_model

        return build_hf_model(spec, task, seed)
    raise ValueError(f"unknown model kind {kind!r}; use 'gpt' or 'hf'")


def validate_specs(specs: list["RunSpec"]) -> None:
    """Build every distinct task, model and training config of ``specs`` once, in this
    process, so a bad setting (a width not divisible by the heads, a device this machine
    lacks, a corrupt model file) is one clear error before any directory is written or any
    worker process starts."""
    from myopia.data import make_task

    tasks: dict[str, object] = {}
    checked: set[str] = set()
    for spec in specs:
        TrainConfig(**spec.train)
        tkey = json.dumps(spec.task, sort_keys=True)
        if tkey not in tasks:
            tasks[tkey] = make_task(**spec.task)
        mkey = json.dumps(spec.model, sort_keys=True) + tkey
        if mkey in checked:
            continue
        checked.add(mkey)
        if spec.model.get("kind", "gpt") == "hf":
            from myopia.hf import check_hf_model_spec

            check_hf_model_spec(spec.model, tasks[tkey])
        else:
            build_model(spec.model, tasks[tkey], 0)


# ---------------------------------------------------------------------- saved runs
def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory, its checkpoint directory, or a model.safetensors file -> the file."""
    p = Path(path)
    for cand in (p, p / "model.safetensors", p / "checkpoint" / "model.safetensors"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(
        f"checkpoint {p} does not exist or holds no model.safetensors; give a run directory from `myopia gap` "
        f"(e.g. OUT/runs/vanilla-seed0) or its checkpoint/model.safetensors"
    )


def checkpoint_config(ckpt: Path) -> dict:
    """The measure config.json (task, model) found above a checkpoint, if any."""
    for parent in list(ckpt.resolve().parents)[:5]:
        cfg = parent / "config.json"
        if cfg.is_file():
            try:
                data = json.loads(cfg.read_text())
            except ValueError:
                continue
            if isinstance(data, dict) and "task" in data and "model" in data:
                return data
    return {}


def load_checkpoint_model(ckpt: Path, model_spec: dict, task, seed: int = 0) -> torch.nn.Module:
    """The model a run spec names, with the weights of ``ckpt`` (its position table sets block_size)."""
    from safetensors.torch import load_file

    from myopia.train import CHECKPOINT_FILES, _verified

    if ckpt.name in CHECKPOINT_FILES and (ckpt.parent / "state.json").is_file():
        _verified(ckpt.parent)  # a truncated or corrupt checkpoint is named, not half-loaded
    try:
        state = load_file(str(ckpt))
    except Exception as e:  # safetensors raises its own error type for a file that is not safetensors
        raise ValueError(
            f"{ckpt} is not a readable safetensors checkpoint ({str(e).splitlines()[0][:120]}); give a run directory "
            f"of `myopia gap` (OUT/runs/vanilla-seed0) or its checkpoint/model.safetensors"
        ) from None
    spec = dict(model_spec)
    wpe = state.get("transformer.wpe.weight")
    if wpe is not None and "block_size" not in spec:
        spec["block_size"] = int(wpe.shape[0])
        if spec["block_size"] < task.seq_len:
            raise ValueError(
                f"the checkpoint {ckpt} covers {spec['block_size']} positions but the sequences have {task.seq_len}; "
                f"use --seq-len (and context lengths) <= {spec['block_size']}, or a model trained on longer sequences"
            )
    model = build_model(spec, task, seed)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise ValueError(
            f"checkpoint {ckpt} does not match the model ({detail}); give the task and model flags it was trained "
            f"with (--task, --n-layer, --n-embd, ...)"
        ) from None
    return model



def run_one(spec: RunSpec, out_dir: Path | None, progress=True) -> RunResult:
    from myopia.data import make_task

    task = make_task(**spec.task)
    if spec.extra.get("init_from"):  # a fine-tune: start from another run's final weights
        if out_dir is None:
            raise ValueError(f"run {spec.key} starts from run {spec.extra['init_from']!r}: give the runs directory")
        start = resolve_checkpoint(out_dir / spec.extra["init_from"])
        model = load_checkpoint_model(start, spec.model, task, spec.seed)
    else:
        model = build_model(spec.model, task, spec.seed)
    return train(
        model, task, GradientPolicy.from_dict(spec.policy),
        TrainConfig(**spec.train), seed=spec.seed,
        out_dir=None if out_dir is None else out_dir / spec.key, progress=progress, desc=spec.key,
        objective=resolve_objective(spec.extra.get("objective"), task, spec.seed),
    )


def resolve_objective(objective: dict | None, task, seed: int):
    """The train() objective named by a spec: ``{"fn": "module:factory", "args": {...}}`` ->
    ``factory(task, seed=seed, **args)``; None keeps the task's own loss. A name, not a
    function, travels in the spec so that worker processes and resumed runs rebuild it."""
    if not objective:
        return None
    import importlib

    module, _, name = objective["fn"].partition(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ValueError(f"run objective {objective['fn']!r} does not name a function (module:function)") from None
    return factory(task, seed=seed, **objective.get("args", {}))


class _ThrottledTicks:
    """Step counts to the parent's progress bar, a few times a second: a manager-queue put
    is an IPC round trip, too slow to pay on every step of a small model."""

    def __init__(self, queue, every_s: float = 0.25):
        self.queue, self.every_s, self.pending, self.last = queue, every_s, 0, time.monotonic()

    def __call__(self, n: int) -> None:
        self.pending += n
        if time.monotonic() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.queue.put(self.pending)
            self.pending, self.last = 0, time.monotonic()


def _worker(spec_dict: dict, out_dir: str, threads: int, queue) -> tuple[str, dict | None, str | None]:
    torch.set_num_threads(threads)
    spec = RunSpec(**spec_dict)
    tick = _ThrottledTicks(queue)
    try:
        result = run_one(spec, Path(out_dir), progress=tick)
        tick.flush()
        return spec.key, result.to_dict(), None
    except Exception as e:  # reported in the parent with the run's key
        return spec.key, None, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"


class RunFailed(RuntimeError):
    pass


def default_workers(n_jobs: int) -> int:
    return max(1, min(n_jobs, os.cpu_count() or 1))


def run_all(
    specs: list[RunSpec], out_dir: str | Path, *, workers: int = 0, progress: bool = True, desc: str = "runs"
) -> dict[str, RunResult]:
    """Run every spec (in parallel when workers > 1); returns key -> RunResult.

    Under torchrun the specs run one after another, each on every rank of the process group
    (data parallel, :mod:`myopia.distributed`), and only rank 0 shows progress."""
    from myopia import distributed

    out = Path(out_dir)
    workers = workers or default_workers(len(specs))
    if distributed.current().enabled:
        workers, progress = 1, progress and distributed.is_main()
    total = sum(TrainConfig(**s.train).steps for s in specs)
    finished = {s.key: r for s in specs if (r := finished_run(out / s.key)) is not None}
    done = sum(TrainConfig(**s.train).steps for s in specs if s.key in finished)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=done, desc=desc, unit="step", dynamic_ncols=True)
    results: dict[str, RunResult] = {}
    try:
        if workers == 1:
            for s in specs:
                results[s.key] = run_one(s, out, progress=(lambda n: bar.update(n)) if bar else False)
            return results
        # finished runs are read here (a worker process costs seconds to start); the rest train in
        # workers with the threads a fresh start would give them, so a resumed measure rounds the same
        threads = max(1, (os.cpu_count() or 1) // workers)
        results.update(finished)
        specs_all, specs = specs, [s for s in specs if s.key not in results]
        if not specs:
            return {s.key: results[s.key] for s in specs_all}
        ctx = mp.get_context("spawn")
        with ctx.Manager() as manager, ctx.Pool(min(workers, len(specs))) as pool:
            queue = manager.Queue()
            pending = [pool.apply_async(_worker, (s.to_dict(), str(out), threads, queue)) for s in specs]
            started = False
            while pending:
                while not queue.empty():
                    n = queue.get()
                    if bar is not None:
                        if not started:  # the rate and ETA count training steps, not worker start-up
                            bar.reset()
                            bar.update(done)
                            started = True
                        bar.update(n)
                still = []
                for p in pending:
                    if p.ready():
                        key, res, err = p.get()
                        if err is not None:
                            pool.terminate()
                            log = out / key / "error.log"
                            log.parent.mkdir(parents=True, exist_ok=True)
                            log.write_text(err)
                            raise RunFailed(
                                f"run {key} failed: {err.splitlines()[0]} (traceback in {log}; "
                                f"finished runs are kept, rerun with --resume)"
                            )
                        results[key] = RunResult(**res)
                    else:
                        still.append(p)
                pending = still
                if pending:
                    pending[0].wait(0.2)
            pool.close()  # let workers exit on their own (terminate leaks their semaphores)
            pool.join()
        return {s.key: results[s.key] for s in specs_all}
    finally:
        if bar is not None:
            bar.close()
