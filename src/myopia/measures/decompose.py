"""`myopia decompose`: the offset decomposition of a trained model's gradient.

The mechanism (parameter groups, the exact myopic/future split, the per-offset profile
G(tau) and its estimator, context-length shares, the training-time tracker) lives in
:mod:`myopia.gradients`; this module trains or loads a model and runs it on held-out data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from myopia.gradients import context_length_shares, offset_gradients, sample_positions
from myopia.measures.scaffold import MeasureResult, as_model, as_task, run_measure
from myopia.policy import VANILLA
from myopia.presets import DECOMPOSE_TRAIN
from myopia.runs import RunSpec, checkpoint_config, load_checkpoint_model, resolve_checkpoint
from myopia.train import TrainConfig


@dataclass
class DecomposeResult(MeasureResult):
    """``myopia decompose``: the offset decomposition of a trained model's gradient."""

    measure = "decompose"

    task: dict
    model: dict
    checkpoint: str
    train: dict  # training config of the model (empty when a checkpoint was given)
    test_loss: float | None  # held-out loss of the model (when trained here)
    seq_len: int
    batch_size: int
    max_offset: int
    offsets: list[str]
    positions: list[int]
    sampled: bool
    estimator: str
    split: dict  # group -> shares of G(0) and of the future part, norms, cosine
    profile: dict  # group -> per-offset squared norms and shares
    profile_check: dict
    context_lengths: list[dict] = field(default_factory=list)
    gradient_tracking: list[dict] = field(default_factory=list)  # training-curve rows with grad_* keys


AUTO_POSITIONS_MAX_T = 64  # profile every loss position up to this length, else a sample
AUTO_POSITIONS_SAMPLE = 32


def decompose_gradients(
    task: str | dict | None = None,
    *,
    model: dict | None = None,
    train=None,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    max_offset: int = 8,
    positions: int | str | None = "auto",
    batch_size: int = 64,
    context_lengths: Sequence[int] | None = None,
    profile: bool = True,
    out_dir: str | Path = "runs/decompose",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> DecomposeResult:
    """Decompose a trained model's gradient on held-out data into G(0), future and G(tau).

    Without ``checkpoint`` a vanilla model is trained first (``train`` defaults to
    :data:`myopia.presets.DECOMPOSE_TRAIN`, with gradient tracking) into ``out_dir/runs``.
    ``task``: a name or ``make_task`` arguments (default: precache, or the task a checkpoint's
    config.json names). ``context_lengths`` adds the future share of the W_K/W_V gradient for
    each context length N (the first N positions of the same sequences); the task's
    sequences are made long enough for the largest N. Writes ``results.json`` and ``config.json``.
    """
    if isinstance(max_offset, bool) or not isinstance(max_offset, int) or max_offset < 0:
        raise ValueError(f"max_offset K must be an integer >= 0 (bins tau = 0..K and tau > K), got {max_offset!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = sorted({int(n) for n in context_lengths}) if context_lengths else []
    if lengths and lengths[0] < 2:
        raise ValueError(f"context lengths must be >= 2, got {lengths[0]}")
    task_spec = {"name": task} if isinstance(task, str) else dict(task or {})
    model_spec = as_model(model)
    ckpt = None
    if checkpoint is not None:
        ckpt = resolve_checkpoint(checkpoint)
        saved = checkpoint_config(ckpt)  # the task and model the checkpoint was trained with; arguments override
        if saved:
            task_spec = {**saved["task"], **task_spec}
            model_spec = {**saved["model"], **(model or {})}
    task_spec.setdefault("name", "precache")
    if lengths and "seq_len" not in task_spec:
        task_spec["seq_len"] = lengths[-1]
    task_obj, task_spec = as_task(task_spec)
    if lengths and lengths[-1] > task_obj.seq_len:
        raise ValueError(
            f"context length {lengths[-1]} is longer than the task's sequences ({task_obj.seq_len}); "
            f"use context lengths <= {task_obj.seq_len}, or raise --seq-len (a checkpoint covers only the positions "
            f"it was trained on: omit --checkpoint to train on longer sequences)"
        )
    if positions == "auto":
        positions = None if task_obj.seq_len <= AUTO_POSITIONS_MAX_T else AUTO_POSITIONS_SAMPLE
    sample_positions(task_obj.seq_len, positions, seed)  # validate before training
    train = train or TrainConfig(**DECOMPOSE_TRAIN)
    config = {
        "task": task_spec, "model": model_spec,
        "train": {} if ckpt else train.to_dict(), "checkpoint": str(ckpt) if ckpt else None, "seed": seed,
        "max_offset": max_offset, "positions": positions, "batch_size": batch_size, "context_lengths": lengths,
    }
    specs = [] if ckpt else [RunSpec(f"vanilla-seed{seed}", model_spec, task_spec, VANILLA.to_dict(), train.to_dict(), seed)]

    def summarize(runs, out: Path) -> DecomposeResult:
        weights, tracking, test_loss = ckpt, [], None
        if specs:
            run = runs[specs[0].key]
            weights = out / "runs" / specs[0].key / "checkpoint" / "model.safetensors"
            tracking = [r for r in run.curve if "grad_myopic_norm" in r]
            test_loss = run.test_loss
        net = load_checkpoint_model(weights, model_spec, task_obj, seed)
        batch = task_obj.batch("test", 0, batch_size)
        og = offset_gradients(net, batch, task_obj.loss, max_offset=max_offset, positions=positions, seed=seed,
                              profile=profile)
        rows = context_length_shares(net, batch, task_obj.loss, lengths) if lengths else []
        return DecomposeResult(
            # a model trained here is named relative to the output directory, which may be swapped in
            task=task_spec, model=model_spec, checkpoint=str(weights.relative_to(out) if specs else weights),
            train=config["train"], test_loss=test_loss,
            seq_len=og.seq_len, batch_size=og.batch_size, max_offset=og.max_offset, offsets=og.offsets,
            positions=og.positions, sampled=og.sampled, estimator=og.estimator, split=og.split, profile=og.profile,
            profile_check=og.profile_check, context_lengths=rows, gradient_tracking=tracking,
        )

    return run_measure("decompose", config, specs=specs, summarize=summarize, out_dir=out_dir, resume=resume,
                       overwrite=overwrite, workers=1, progress=progress, desc=f"decompose {task_obj.name}")
