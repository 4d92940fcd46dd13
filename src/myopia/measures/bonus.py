"""The local myopia bonus of a trained model θ0: L(θ0′) - L(φ*), against an equal-budget control.

A frozen copy of θ0 supplies everything the past provides — in every attention layer the
keys/values of positions i < j (``detach="kv"``), or the attention inputs at i < j from
which φ's own projections recompute them (``detach="hidden"``, the paper's variant). A
trainable copy φ computes the present (the diagonal pair i = j and everything at
position j) and is optimised for each position's own loss only: the myopic policy with
the past taken from θ0. ``init="theta0"`` (default) starts φ at θ0, so L(φ) = L(θ0) at
step 0; ``init="scratch"`` starts φ from a fresh initialisation, as the paper did.

Re-optimising φ is also *more training*: an unconverged θ0 improves with more steps
whatever the objective, so L(θ0) - L(φ*) alone cannot tell "φ gave up the future for the
present" from "θ0 needed more steps". The **control** θ0′ is θ0 trained on under the
vanilla policy with its own live past — same steps, learning rate, schedule, data order
and evaluation. Both are selected by validation loss over their evaluated steps (step 0,
every ``eval_every`` steps, the last; :func:`myopia.train.train` with ``select_best``), so
neither is credited with steps that hurt it. Reported, on the test split:

* ``bonus`` = L(θ0′) - L(φ*): what giving up the future buys the present (the headline);
* ``raw_bonus`` = L(θ0) - L(φ*): the number without the control;
* ``training_drift`` = L(θ0) - L(θ0′): what the extra steps alone buy;

so ``raw_bonus = bonus + training_drift``. With no past to read (a context of one token)
φ and θ0′ are the same computation trained the same way and ``bonus`` is 0.

φ and θ0′ are trained by :func:`myopia.train.train` (φ with a ``forward_fn`` that adds θ0's
past — one no-grad pass of θ0 plus one training pass of φ per step); there is no second
loop. Each quantity is the mean over held-out (test) batches of the paired per-batch
difference, with a 95% Student-t interval over batches (one trained φ and θ0′: the
interval is over data, not over training seeds).

θ0 is any model with the built-in GPT's interface (``model(x, policy, past=...)`` and
``past_states(x)``): the built-in GPT, or an HF causal LM through
:class:`myopia.hf.HFCausalLM`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from myopia.data import make_task
from myopia.measures.scaffold import MeasureResult, as_detach, run_measure, trivial_loss
from myopia.policy import GradientPolicy
from myopia.presets import BONUS_TRAIN
from myopia.results import mean_ci95
from myopia.train import TrainConfig, default_forward, evaluate, train

INITS = ("theta0", "scratch")
CONTROL_KEY = "control-vanilla"  # run directory of θ0′
CONTROL = "theta0 trained on under the vanilla policy, same budget, data order and evaluation as phi"
SELECTION = "lowest validation loss over the evaluated steps, step 0 included"


@dataclass
class BonusResult(MeasureResult):
    measure = "bonus"

    task: dict
    model: dict  # how θ0 was obtained
    train: dict
    detach: list[str]
    init: str
    seed: int
    base_loss: float  # L(θ0), held-out
    control_loss: float  # L(θ0′): θ0 trained on, vanilla, with φ's budget (best-validation step)
    control_selected_step: int  # the step of θ0′'s weights (0: θ0 itself)
    bonus_loss: float  # L(φ*) of the headline variant (detach[0])
    bonus: dict  # L(θ0′) - L(φ*): {"mean", "ci95", "n", "std"} over held-out batches, headline variant
    raw_bonus: dict  # L(θ0) - L(φ*), headline variant
    training_drift: dict  # L(θ0) - L(θ0′)
    base_loss_per_position: list[float]
    control_loss_per_position: list[float]
    bonus_loss_per_position: list[float]
    per_position_bonus: list[float]  # L(θ0′) - L(φ*) per position
    base_loss_per_batch: list[float]
    control_loss_per_batch: list[float]
    bonus_per_batch: list[float]  # L(θ0′) - L(φ*) per held-out batch
    trivial_loss: float
    variants: dict = field(default_factory=dict)  # detach -> {"policy", "bonus_loss", "bonus", "raw_bonus", ...}
    curves: dict = field(default_factory=dict)  # run key -> [{"step", "train_loss"?, "val_loss"?}]


def frozen_past_forward(theta0: nn.Module):
    """``forward_fn`` for :func:`train`: φ under the policy, every off-band pair from θ0."""

    def forward(phi: nn.Module, x: torch.Tensor, policy: GradientPolicy) -> torch.Tensor:
        return phi(x, policy=policy, past=theta0.past_states(x))

    return forward


def per_batch_losses(model, task, forward_fn, policy, *, batches: int, batch_size: int, device: str = "cpu"):
    """Per-batch mean losses and the per-position mean over ``batches`` test batches."""
    _, per_pos, means = evaluate(model, task, split="test", batches=batches, batch_size=batch_size,
                                 forward_fn=forward_fn, policy=policy, device=device, per_batch=True)
    return means, per_pos


def _fresh_like(theta0: nn.Module, model_spec: dict | None, task, seed: int) -> nn.Module:
    from myopia.hf import HFCausalLM, from_config

    if isinstance(theta0, HFCausalLM):
        return HFCausalLM(from_config(copy.deepcopy(theta0.hf.config), seed=seed))
    if model_spec is None:
        raise ValueError("init='scratch' needs the model spec of θ0 to build a fresh model")
    from myopia.runs import build_model

    return build_model(model_spec, task, seed)


def local_myopia_bonus(
    theta0: nn.Module,
    task,
    *,
    train_cfg: TrainConfig | None = None,
    detach: str | list[str] = "kv",
    init: str = "theta0",
    seed: int = 0,
    out_dir: str | Path = "runs/bonus",
    model_info: dict | None = None,
    model_spec: dict | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> BonusResult:
    """Measure the local myopia bonus of ``theta0`` on ``task`` (an object or make_task kwargs)
    against the equal-budget control θ0′ (see the module docstring).

    ``train_cfg`` (φ's and θ0′'s training) defaults to :data:`myopia.presets.BONUS_TRAIN`, the
    same as ``myopia bonus``. Writes ``results.json`` and ``config.json`` to ``out_dir``; the
    runs of φ and θ0′ keep checkpoints under ``out_dir/runs/``, so ``resume=True`` continues
    a killed measurement.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {', '.join(INITS)}")
    task = make_task(**task) if isinstance(task, dict) else task
    if getattr(task, "regression", False) is False and hasattr(theta0, "vocab_size"):
        if task.vocab_size > theta0.vocab_size:
            raise ValueError(
                f"tokenizer/model mismatch: the task has {task.vocab_size} token ids, the model's head {theta0.vocab_size}"
            )
    train_cfg = train_cfg or TrainConfig(**BONUS_TRAIN)
    detach = as_detach(detach)
    policies = [GradientPolicy(horizon=0, detach=d) for d in detach]

    def summarize(_runs, out: Path) -> BonusResult:
        device = train_cfg.device
        ref = copy.deepcopy(theta0).to(device)
        ref.requires_grad_(False)
        ref.eval()
        nb, bs = train_cfg.test_batches, train_cfg.batch_size
        curves: dict = {}  # run key -> training curve

        def test_losses(model, forward_fn, policy):  # (per-batch means, per-position means), test split
            return per_batch_losses(model, task, forward_fn, policy, batches=nb, batch_size=bs, device=device)

        def fit(model, policy, key, forward_fn=default_forward):
            run = train(model, task, policy, train_cfg, seed=seed, out_dir=out / "runs" / key, progress=progress,
                        forward_fn=forward_fn, desc=key, select_best=True)
            curves[key] = run.curve
            return run

        base_batches, base_pos = test_losses(ref, default_forward, GradientPolicy())
        control = copy.deepcopy(theta0)
        control.requires_grad_(True)
        control_run = fit(control, GradientPolicy(), CONTROL_KEY)
        control_batches, control_pos = test_losses(control, default_forward, GradientPolicy())
        del control
        forward = frozen_past_forward(ref)
        variants = {}
        for d, pol in zip(detach, policies):
            if init == "theta0":
                phi = copy.deepcopy(theta0)
                phi.requires_grad_(True)
            else:
                phi = _fresh_like(theta0, model_spec, task, seed)
            run = fit(phi, pol, f"bonus-{pol.name}", forward)
            phi_batches, phi_pos = test_losses(phi, forward, pol)
            bonus = [c - p for c, p in zip(control_batches, phi_batches)]
            variants[d] = {
                "policy": pol.name,
                "bonus_loss": sum(phi_batches) / nb,
                "selected_step": run.selected_step,
                "bonus": mean_ci95(bonus),
                "raw_bonus": mean_ci95([b - p for b, p in zip(base_batches, phi_batches)]),
                "bonus_per_batch": bonus,
                "bonus_loss_per_position": phi_pos,
                "per_position_bonus": [c - p for c, p in zip(control_pos, phi_pos)],
            }
        triv, _ = trivial_loss(task, nb, bs)
        head = variants[detach[0]]
        return BonusResult(
            task=task.to_dict(), model=model_info or {}, train=train_cfg.to_dict(), detach=detach, init=init,
            seed=seed, base_loss=sum(base_batches) / nb, control_loss=sum(control_batches) / nb,
            control_selected_step=control_run.selected_step, bonus_loss=head["bonus_loss"], bonus=head["bonus"],
            raw_bonus=head["raw_bonus"],
            training_drift=mean_ci95([b - c for b, c in zip(base_batches, control_batches)]),
            base_loss_per_position=base_pos, control_loss_per_position=control_pos,
            bonus_loss_per_position=head["bonus_loss_per_position"], per_position_bonus=head["per_position_bonus"],
            base_loss_per_batch=base_batches, control_loss_per_batch=control_batches,
            bonus_per_batch=head["bonus_per_batch"], trivial_loss=triv, variants=variants, curves=curves,
        )

    config = {"task": task.to_dict(), "model": model_info or {}, "train": train_cfg.to_dict(), "detach": detach,
              "init": init, "seed": seed, "control": CONTROL, "selection": SELECTION}
    return run_measure("bonus", config, specs=[], summarize=summarize, out_dir=out_dir, resume=resume,
                       overwrite=overwrite, progress=progress)


# ---------------------------------------------------------------------- loading θ0
def load_theta0(model: str | Path, *, data: str | None = None, seq_len: int | None = None,
                tokenizer: str | None = None,
                trust_remote_code: bool = False) -> tuple[nn.Module, dict, dict, dict | None]:
    """(θ0, task spec, model info, model spec) from an HF model directory or a myopia checkpoint.

    ``model`` is either a Hugging Face model directory (``config.json`` with a ``model_type``;
    the task is ``data`` tokenized by the model's tokenizer, or by ``tokenizer``) or a run of
    ``myopia gap`` (its directory, its ``checkpoint/`` or ``model.safetensors``), whose
    measurement ``config.json`` says how to rebuild the model and task (``data`` replaces
    the corpus, ``tokenizer`` the tokenizer).
    """
    p = Path(model).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"model {p} does not exist")
    cfg_file = p / "config.json" if p.is_dir() else None
    if cfg_file is not None and cfg_file.exists() and "model_type" in json.loads(cfg_file.read_text()):
        from myopia.hf import HFCausalLM
        from myopia.hf.loading import check_tokenizer_files, check_weight_files

        if data is None:
            raise ValueError("an HF model needs text to measure on: pass --data FILE")
        check_weight_files(p)
        check_tokenizer_files(tokenizer or p)
        theta0 = HFCausalLM.from_pretrained(p, trust_remote_code=trust_remote_code)
        task = {"name": "text", "data": str(data), "tokenizer": tokenizer or str(p.resolve())}
        if seq_len is not None:
            task["seq_len"] = seq_len
        return theta0, task, {"kind": "hf", "path": str(p.resolve())}, {"kind": "hf", "path": str(p.resolve())}
    from myopia.runs import checkpoint_config, load_checkpoint_model, resolve_checkpoint

    try:
        weights = resolve_checkpoint(p)
    except FileNotFoundError:
        raise ValueError(
            f"{p} is neither a Hugging Face model directory (config.json with model_type) nor a myopia run "
            f"(checkpoint/model.safetensors); pass a model directory or e.g. runs/gap/runs/vanilla-seed0"
        ) from None
    measure = checkpoint_config(weights)
    if not measure:
        raise ValueError(
            f"no measurement config.json (with model and task) above {weights}; a built-in GPT checkpoint is "
            f"read from a `myopia gap` output directory (e.g. OUT/runs/vanilla-seed0)"
        )
    task = dict(measure["task"])
    if data is not None:
        if task.get("name") != "text":
            raise ValueError(f"the model at {p} was trained on task {task.get('name')!r}; --data applies to text models only")
        task["data"] = str(data)
    if tokenizer is not None:
        if task.get("name") != "text":
            raise ValueError(f"the model at {p} was trained on task {task.get('name')!r}; --tokenizer applies to text models only")
        task["tokenizer"] = tokenizer
    if seq_len is not None:
        task["seq_len"] = seq_len
    spec = dict(measure["model"])
    theta0 = load_checkpoint_model(weights, spec, make_task(**task))
    return theta0, task, {**spec, "checkpoint": str(weights.resolve())}, spec


