"""One training loop for every experiment.

* AdamW (weight decay on matrices only), linear warmup then cosine decay.
* Data order is a pure function of the task and run seed (``task.batch("train", step, B, seed)``),
  and the caller builds the model under ``torch.manual_seed(seed)``: a vanilla and a myopic
  run with the same seed start from the same weights and see the same batches.
* Periodic held-out evaluation, metrics as JSON lines, a progress bar.
* Checkpoints (``model.safetensors``, ``optimizer.safetensors``, ``state.json``) every
  ``checkpoint_every`` steps; a killed run resumes from the last one and, because data is
  indexed by step, continues exactly as if it had never stopped. A finished run is never
  retrained: its saved result is returned.
* A NaN/inf loss stops the run with the step at which it happened.
* Under ``torchrun`` the same loop trains data-parallel (:mod:`myopia.distributed`): every
  rank takes its rows of the step's global batch, DDP (or FSDP2) averages the gradients,
  held-out losses are gathered, and only rank 0 writes metrics, checkpoints and results.
* ``select_best=True`` ends the run at the weights of its lowest validation loss among the
  evaluated steps (every ``eval_every`` steps, the last step, and step 0, the weights it
  started from): model selection on the val split, the result's test loss measured on the
  selected weights. The best weights travel with each checkpoint, so a resumed run selects
  exactly as an uninterrupted one.

``forward_fn(model, x, policy) -> out`` is how a step calls the model; the default is
``model(x, policy=policy)``. Measures that need another forward (a frozen past, say) pass
their own instead of writing another loop.

``objective(model, x, y, policy, step) -> loss`` replaces *what a step minimises* (the mean
of the returned tensor; default ``task.loss(forward_fn(model, x, policy), y)``) — e.g. a
policy-gradient fine-tune whose loss involves tokens the model samples itself
(:mod:`myopia.reinforce`). Held-out evaluation still reports the task's loss through
``forward_fn``, so every run's curves and test loss mean the same thing. ``step`` lets an
objective that draws random numbers seed them per step, so a resumed run repeats them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from myopia import distributed
from myopia.policy import GradientPolicy
from myopia.results import atomic_write_json, atomic_write_text

ForwardFn = Callable[[nn.Module, torch.Tensor, GradientPolicy], torch.Tensor]
StepCallback = Callable[[int, nn.Module, torch.Tensor, torch.Tensor], "dict | None"]
Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor, GradientPolicy, int], torch.Tensor]


@dataclass
class TrainConfig:
    """How one model is trained."""

    steps: int = 1500  # optimizer steps
    batch_size: int = 32  # sequences per step
    lr: float = 6e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 50  # linear warmup steps
    weight_decay: float = 0.01  # AdamW weight decay (matrices only)
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.98  # AdamW beta2
    grad_clip: float = 1.0  # max global grad norm (0 = off)
    eval_every: int = 250  # held-out evaluation period (steps)
    eval_batches: int = 4  # batches per periodic evaluation (val split)
    test_batches: int = 16  # batches for the final held-out loss (test split)
    checkpoint_every: int = 250  # checkpoint period (steps); a final one is always written
    impl: str = "auto"  # attention implementation: auto, reference, fast
    device: str = "cpu"
    threads: int = 0  # torch threads for this run (0 = leave as is)
    track_gradients_every: int = 0  # every k steps log myopic/future gradient norms and their cosine (0 = off)

    def __post_init__(self) -> None:
        from myopia.attention import IMPLS
        from myopia.config import check_field_types

        check_field_types(self)
        if self.impl not in IMPLS:
            raise ValueError(f"TrainConfig.impl must be one of {', '.join(IMPLS)}, got {self.impl!r}")
        check_device(self.device)
        distributed.check_batch_size(self.batch_size)
        for name in ("steps", "batch_size", "eval_every", "eval_batches", "test_batches", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.track_gradients_every < 0:
            raise ValueError(f"TrainConfig.track_gradients_every must be >= 0 (0 = off), got {self.track_gradients_every}")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunResult:
    """Outcome of one training run."""

    policy: dict
    seed: int
    steps: int
    test_loss: float  # mean held-out (test split) loss
    test_loss_per_position: list[float]
    curve: list[dict] = field(default_factory=list)  # {"step", "train_loss"?, "val_loss"?}
    wall_time_s: float = 0.0
    selected_step: int | None = None  # select_best: the step whose weights these are (None: the last)
    selected_val_loss: float | None = None  # select_best: their validation loss
    test_accuracy: dict | None = None  # {"correct", "n"} test sequences, for tasks with an ``accuracy`` hook

    def to_dict(self) -> dict:
        return asdict(self)


class NonFiniteLossError(FloatingPointError):
    pass


def check_device(device: str) -> None:
    """A torch device name that exists on this machine (checked before anything is written)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but this machine has no CUDA GPU; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} is not available on this machine; use --device cpu")


def default_forward(model: nn.Module, x: torch.Tensor, policy: GradientPolicy) -> torch.Tensor:
    return model(x, policy=policy)


def forward_with_impl(impl: str) -> ForwardFn:
    """``default_forward`` with the attention implementation of ``TrainConfig.impl``."""
    if impl == "auto":
        return default_forward
    return lambda model, x, policy: model(x, policy=policy, impl=impl)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier: linear warmup, then cosine to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def loss_mask(task, y: torch.Tensor) -> torch.Tensor | None:
    """(B, T) bool: the positions whose loss counts (the task's ``loss_mask`` hook), or None: all."""
    hook = getattr(task, "loss_mask", None)
    return None if hook is None else hook(y)


def mean_loss(loss: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The mean of a (B, T) per-position loss over the counted positions (all when ``mask``
    is None: exactly ``loss.mean()``, so unmasked tasks train on the same number as always)."""
    return loss.mean() if mask is None else loss[mask].mean()


@torch.no_grad()
def held_out_losses(task, loss_of, *, split: str, batches: int, batch_size: int) -> tuple[list[float], list[float], float]:
    """Per-batch mean losses, the per-position mean loss and the overall mean loss over
    ``batches`` held-out batches; ``loss_of(x, y) -> (B, T)`` is the per-position loss of
    whatever is measured. With a task's ``loss_mask`` every mean is over counted positions
    only (a position never counted has per-position loss 0)."""
    means, total, count = [], None, None
    for i in range(batches):
        x, y = task.batch(split, i, batch_size)
        loss = loss_of(x, y).double()  # (B, T)
        mask = loss_mask(task, y)
        if mask is None:
            per_pos = loss.mean(0)  # (T,)
            means.append(float(per_pos.mean()))
            total = per_pos if total is None else total + per_pos
            continue
        mask = mask.to(loss.device)
        sums, counts = (loss * mask).sum(0), mask.sum(0).double()  # (T,), (T,)
        means.append(float(sums.sum() / counts.sum()))
        total = sums if total is None else total + sums
        count = counts if count is None else count + counts
    if count is None:
        per_pos = [float(v) for v in (total / batches).cpu()]
        return means, per_pos, sum(per_pos) / len(per_pos)
    per_pos = [float(v) for v in (total / count.clamp(min=1)).cpu()]
    return means, per_pos, float(total.sum() / count.sum())


@torch.no_grad()
def held_out_accuracy(task, predict, *, split: str, batches: int, batch_size: int) -> dict | None:
    """{"correct", "n"}: held-out sequences whose answer ``predict(x) -> out`` gets exactly
    right (the task's ``accuracy(out, y) -> (B,) bool`` hook); None for a task without one."""
    if not hasattr(task, "accuracy"):
        return None
    correct = n = 0
    for i in range(batches):
        x, y = task.batch(split, i, batch_size)
        out = predict(x)
        hit = task.accuracy(out, y.to(out.device))  # (B,)
        correct, n = correct + int(hit.sum()), n + hit.numel()
    return {"correct": correct, "n": n}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    task,
    *,
    split: str = "val",
    batches: int = 4,
    batch_size: int = 32,
    forward_fn: ForwardFn = default_forward,
    policy: GradientPolicy | None = None,
    device: str = "cpu",
    per_batch: bool = False,
):
    """Mean loss and per-position mean loss over ``batches`` held-out batches (and, with
    ``per_batch``, the per-batch means too). Under torchrun every rank scores its rows of
    each batch and gets the gathered losses of all of them."""
    was_training = model.training
    model.eval()
    policy = policy or GradientPolicy()
    loss_of = distributed.row_split(lambda x, y: task.loss(forward_fn(model, x.to(device), policy), y.to(device)))
    means, per_pos, mean = held_out_losses(task, loss_of, split=split, batches=batches, batch_size=batch_size)
    model.train(was_training)
    return (mean, per_pos, means) if per_batch else (mean, per_pos)


def train(
    model: nn.Module,
    task,
    policy: GradientPolicy,
    cfg: TrainConfig,
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: bool | Callable[[int], None] = True,
    forward_fn: ForwardFn = default_forward,
    callbacks: list[tuple[int, StepCallback]] | None = None,
    desc: str | None = None,
    objective: Objective | None = None,
    select_best: bool = False,
) -> RunResult:
    """Train ``model`` on ``task`` under ``policy``; returns the held-out result.

    ``out_dir`` (optional) receives checkpoints, ``metrics.jsonl`` and ``result.json``.
    ``progress``: True for a tqdm bar, False for none, or a callable receiving step counts.
    ``callbacks``: (every_k_steps, fn) pairs; fn(step, model, x, y) may return a dict that
    is logged to ``metrics.jsonl``. ``objective``: what a step minimises, if not the task's
    loss (see the module docstring); ``train_loss`` in the curve is then its value.
    ``select_best``: end with the weights of the lowest validation loss, step 0 included
    (see the module docstring); ``model`` holds them on return. Under torchrun callbacks run
    on rank 0 only, with the whole model and the step's global batch.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if forward_fn is default_forward:
        forward_fn = forward_with_impl(cfg.impl)
    rank = distributed.current()
    device = cfg.device
    model.to(device)
    model.train()
    out = Path(out_dir) if out_dir is not None else None
    start, curve, elapsed = 0, [], 0.0
    best: BestState | None = None
    done, found = distributed.main_first(lambda: _resume_point(out)) if out is not None else (None, None)
    if done is not None:  # a finished run is never retrained
        if found is not None:
            model.load_state_dict(load_file(str(found[0] / "model.safetensors"), device=device))
        return done
    if rank.enabled and distributed.parallel_mode() == "fsdp" and (callbacks or cfg.track_gradients_every or select_best):
        raise ValueError("per-step callbacks (--track-gradients-every) and select_best need the whole model on one "
                         "process; use --parallel ddp")
    step_model = distributed.data_parallel(model, device)  # the model itself in one process
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg))
    if found is not None:
        start, curve, elapsed, best = _load_checkpoint(*found, model, opt, sched, device)
    writes = out is not None and rank.is_main
    if writes:
        _truncate_metrics(out / "metrics.jsonl", start)  # drop rows logged after the last checkpoint
    if select_best and best is None and start > 0:
        raise ValueError(f"the checkpoint in {out} was written without select_best; resume it the same way")

    def validate() -> float:
        return evaluate(model, task, split="val", batches=cfg.eval_batches, batch_size=cfg.batch_size,
                        forward_fn=forward_fn, policy=policy, device=device)[0]

    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=desc or policy.name, unit="step", leave=False, dynamic_ncols=True)
    tick = progress if callable(progress) else None
    if cfg.track_gradients_every:  # an ordinary callback; imported here because myopia.gradients imports this module
        from myopia.gradients import gradient_split_tracker

        callbacks = [*(callbacks or []), (cfg.track_gradients_every, gradient_split_tracker(task.loss, forward_fn))]
    if not rank.is_main:
        progress, callbacks = False, None
    metrics = open(out / "metrics.jsonl", "a") if writes else None
    t0 = time.perf_counter() - elapsed
    try:
        if select_best and start == 0:  # the starting weights are a candidate too
            best = BestState.of(model, 0, validate())
            curve.append({"step": 0, "val_loss": best.val_loss})
            if metrics is not None:
                metrics.write(json.dumps(curve[-1]) + "\n")
        for step in range(start, cfg.steps):
            x, y = task.batch("train", step, cfg.batch_size, stream=seed)  # the global batch
            x, y = x.to(device), y.to(device)
            xr, yr = distributed.rows(x), distributed.rows(y)  # this rank's rows (all of them in one process)
            if objective is None:
                loss = mean_loss(task.loss(forward_fn(step_model, xr, policy), yr), loss_mask(task, yr))
            else:
                loss = objective(step_model, xr, yr, policy, step).mean()
            loss_value = distributed.mean_over_ranks(loss).item()  # the step's one host sync
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(
                    f"training loss became {loss_value} at step {step} (policy {policy.name}, seed {seed}); "
                    f"lower the learning rate (now {cfg.lr}) or enable gradient clipping"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            row = {"step": step + 1, "train_loss": loss_value}
            for every, fn in callbacks or []:
                if (step + 1) % every == 0:
                    row.update(fn(step + 1, model, x, y) or {})
            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                row["val_loss"] = validate()
                if select_best and row["val_loss"] < best.val_loss:  # ties keep the earlier step
                    best = BestState.of(model, step + 1, row["val_loss"])
                if bar is not None:
                    bar.set_postfix(val=f"{row['val_loss']:.4f}")
            if "val_loss" in row or (step + 1) % 10 == 0 or len(row) > 2:  # rows with callback output are kept
                curve.append(row)
            if metrics is not None:
                metrics.write(json.dumps(row) + "\n")
            if bar is not None:
                bar.update(1)
            if tick is not None:
                tick(1)
            if out is not None and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                if metrics is not None:
                    metrics.flush()
                _save_checkpoint(out / "checkpoint", model, opt, sched, step + 1, curve, time.perf_counter() - t0, best)
    finally:
        if bar is not None:
            bar.close()
        if metrics is not None:
            metrics.close()

    if select_best:  # the final checkpoint then holds the selected weights, which a finished run returns
        model.load_state_dict(best.state)
    test_loss, per_pos = evaluate(
        model, task, split="test", batches=cfg.test_batches, batch_size=cfg.batch_size,
        forward_fn=forward_fn, policy=policy, device=device,
    )
    model.eval()
    accuracy = held_out_accuracy(task, lambda x: forward_fn(model, x.to(device), policy), split="test",
                                 batches=cfg.test_batches, batch_size=cfg.batch_size)
    model.train()
    result = RunResult(
        policy=policy.to_dict(), seed=seed, steps=cfg.steps, test_loss=test_loss,
        test_loss_per_position=per_pos, curve=curve, wall_time_s=time.perf_counter() - t0, test_accuracy=accuracy,
        selected_step=best.step if select_best else None, selected_val_loss=best.val_loss if select_best else None,
    )
    if out is not None:
        _save_checkpoint(out / "checkpoint", model, opt, sched, cfg.steps, curve, result.wall_time_s, best)
        if writes:
            atomic_write_json(out / "result.json", result.to_dict())
        distributed.barrier()  # other ranks read this run's files only once rank 0 has written them
    return result


def finished_run(run_dir: str | Path) -> RunResult | None:
    """What :func:`train` returned for a finished run directory (its ``result.json``, written
    after the final checkpoint), or None while the run has not finished."""
    path = Path(run_dir) / "result.json"
    return RunResult(**json.loads(path.read_text())) if path.is_file() else None


def _resume_point(out: Path) -> tuple[RunResult | None, tuple[Path, dict] | None]:
    """(result of a finished run, newest usable checkpoint) of a run directory. Decided by
    rank 0 under torchrun, so every rank resumes from the same checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    return finished_run(out), latest_checkpoint(out)


@dataclass
class BestState:
    """The lowest-validation weights seen so far (``select_best``); ``state`` is a CPU copy."""

    step: int
    val_loss: float
    state: dict

    @classmethod
    def of(cls, model: nn.Module, step: int, val_loss: float) -> "BestState":
        return cls(step, val_loss, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})


# ---------------------------------------------------------------------- checkpoints
# A checkpoint is a directory: model.safetensors, optimizer.safetensors and state.json, which
# is written last and holds the sha256 of both tensor files. A new checkpoint is written to
# ``checkpoint.tmp`` and swapped in by renames (``checkpoint`` -> ``checkpoint.prev``, ``.tmp`` ->
# ``checkpoint``), so a kill at any moment leaves at least one complete, verifiable checkpoint.
CHECKPOINT_FILES = ("model.safetensors", "optimizer.safetensors")
BEST_FILE = "best.safetensors"  # select_best: the lowest-validation weights so far


class CorruptCheckpointError(ValueError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _save_checkpoint(path: Path, model, opt, sched, step: int, curve: list, elapsed: float,
                     best: BestState | None = None) -> None:
    """Called on every rank (FSDP2 gathers sharded tensors collectively); rank 0 writes."""
    state = {k: distributed.full_tensor(v).detach().contiguous().cpu() for k, v in model.state_dict().items()}
    opt_sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in opt_sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{idx}.{key}"] = distributed.full_tensor(val).detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{key}"] = val
    if not distributed.is_main():
        return
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(state, str(tmp / "model.safetensors"))
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    files = CHECKPOINT_FILES
    if best is not None:
        save_file({k: v.contiguous() for k, v in best.state.items()}, str(tmp / BEST_FILE))
        files = (*files, BEST_FILE)
    meta = {
        "step": step,
        "elapsed_s": elapsed,
        "curve": curve,
        "param_groups": opt_sd["param_groups"],
        "optimizer_scalars": scalars,
        "scheduler": sched.state_dict(),
        "sha256": {name: _sha256(tmp / name) for name in files},
        "best": None if best is None else {"step": best.step, "val_loss": best.val_loss},
    }
    atomic_write_text(tmp / "state.json", json.dumps(meta))
    prev = path.with_name(path.name + ".prev")
    if prev.exists():
        shutil.rmtree(prev)
    if path.exists():
        os.replace(path, prev)
    os.replace(tmp, path)
    if prev.exists():
        shutil.rmtree(prev)


def _verified(path: Path) -> dict:
    """state.json of a complete checkpoint whose tensor files match their checksums."""
    try:
        meta = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise CorruptCheckpointError(f"{path / 'state.json'} is missing or unreadable ({type(e).__name__})") from None
    for name, digest in meta.get("sha256", {}).items():
        f = path / name
        if not f.is_file() or _sha256(f) != digest:
            raise CorruptCheckpointError(f"{f} is missing, truncated or corrupt (its checksum does not match)")
    return meta


def latest_checkpoint(run_dir: Path) -> tuple[Path, dict] | None:
    """The newest complete, verified checkpoint of a run directory (``checkpoint``, else the
    ``checkpoint.prev`` a kill mid-swap may leave), or None when the run never checkpointed.
    Raises :class:`CorruptCheckpointError` naming the run directory when none is usable."""
    candidates = [run_dir / name for name in ("checkpoint", "checkpoint.prev") if (run_dir / name).exists()]
    if not candidates:
        return None
    problems = []
    for cand in candidates:
        try:
            return cand, _verified(cand)
        except CorruptCheckpointError as e:
            problems.append(str(e))
    raise CorruptCheckpointError(
        f"no usable checkpoint in {run_dir}: {'; '.join(problems)}. Delete {run_dir} to retrain this run "
        f"from the start (other runs are kept)"
    )


def _load_checkpoint(path: Path, meta: dict, model, opt, sched, device) -> tuple[int, list, float, BestState | None]:
    """Full tensors from the files, sharded like the live ones under FSDP2."""
    live = model.state_dict()
    try:
        loaded = load_file(str(path / "model.safetensors"), device=device)
        model.load_state_dict({k: distributed.shard_like(live[k], v) if k in live else v for k, v in loaded.items()})
    except RuntimeError as e:
        raise ValueError(
            f"checkpoint {path} does not match this model ({str(e).splitlines()[0]}); "
            f"use another output directory or --overwrite"
        ) from None
    params = [p for group in opt.param_groups for p in group["params"]]  # the optimizer's index order
    tensors = load_file(str(path / "optimizer.safetensors"), device=device)
    state: dict = {}
    for key, val in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = distributed.shard_like(params[int(idx)], val)
    for key, val in meta["optimizer_scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sched.load_state_dict(meta["scheduler"])
    best = None
    if meta.get("best") is not None:
        best = BestState(meta["best"]["step"], meta["best"]["val_loss"], load_file(str(path / BEST_FILE)))
    return meta["step"], meta["curve"], meta["elapsed_s"], best


def _truncate_metrics(path: Path, step: int) -> None:
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a row cut off by a kill
            continue
        if 0 < step and row["step"] <= step:  # step 0: nothing survives (a select_best step-0 row is rewritten)
            keep.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in keep))
