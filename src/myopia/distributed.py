"""Data-parallel training under ``torchrun``: how a run is spread over processes.

What a model is (:mod:`myopia.model`, :mod:`myopia.hf`) is kept apart from how it is
parallelised (here), as in torchtitan. A process that ``torchrun`` did not start (no
``WORLD_SIZE`` > 1 in its environment) and that initialised no process group is world size
1, and everything below is the identity: single-process code paths are unchanged.

Design decisions:

* **Process group from torchrun's environment** (``init_process_group`` with ``env://``):
  backend ``"cpu:gloo,cuda:nccl"`` on a machine with CUDA (each collective goes to the
  backend of its tensors' device), ``"gloo"`` otherwise. Each rank uses GPU ``LOCAL_RANK``
  (``torch.cuda.set_device``), so ``--device cuda`` means "this rank's GPU".
* **Data are a pure function of (seed, step, rank, world size).** The global batch of step
  s is ``task.batch("train", s, B, stream=seed)`` — exactly the single-process batch — and
  rank r trains on its contiguous rows ``[r B/W, (r+1) B/W)`` (:func:`rows`). With DDP's
  gradient average the step is the single-process step up to float summation order, and a
  world size that does not divide B is refused before anything starts
  (:func:`check_batch_size`).
* **Held-out evaluation is split the same way**: every rank scores its rows of each held-out
  batch and the per-row losses are gathered (:func:`gather_rows`), so every rank holds the
  (B, T) losses of the single-process evaluation and computes the same means.
* **DDP by default; FSDP2** (``fully_shard`` on every block of the model's layer stack and
  on the root; ``--parallel fsdp``) for models whose parameters and optimizer state do not
  fit on one device. Checkpoints are the same safetensors files in both (full tensors,
  gathered with ``DTensor.full_tensor`` and re-sharded with ``distribute_tensor`` on
  resume), so a run can resume under another world size, or in one process.
* **Only rank 0 writes** (checkpoints, metrics, results, figures, progress); when a run
  resumes, rank 0 chooses the checkpoint and every rank reads that one (several machines
  need a shared filesystem for ``--out``).
* A measure's runs run one after another in the process group (no worker pool), each
  using every rank.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch
import torch.distributed as dist
import torch.nn as nn

PARALLEL_MODES = ("ddp", "fsdp")
_mode = "ddp"
T = TypeVar("T")


@dataclass(frozen=True)
class Rank:
    """Where this process stands in the process group (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_world_size() -> int:
    """World size torchrun gave this process (1 when it was not started by torchrun);
    read from the environment, so it is known before any process group exists."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def launched() -> Rank:
    """This process's rank as torchrun's environment states it, without joining the process
    group (cheap: for deciding who prints before anything distributed happens)."""
    if dist.is_available() and dist.is_initialized():
        return current()
    world = launched_world_size()
    if world <= 1:
        return Rank()
    return Rank(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def current() -> Rank:
    """This process's rank, initialising the process group on first use under torchrun."""
    if not dist.is_available():
        return Rank()
    if not dist.is_initialized():
        if launched_world_size() <= 1:
            return Rank()
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        atexit.register(_destroy)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """True on rank 0 (and in every single process): the one process that writes."""
    return current().is_main


def set_parallel(mode: str) -> None:
    """How a model is spread over the ranks: ``"ddp"`` (default) or ``"fsdp"`` (FSDP2)."""
    global _mode
    if mode not in PARALLEL_MODES:
        raise ValueError(f"unknown --parallel {mode!r}; use one of {', '.join(PARALLEL_MODES)}")
    _mode = mode


def parallel_mode() -> str:
    return _mode


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch that the ranks cannot split evenly (one clear line, before anything starts)."""
    world = launched_world_size()
    if world > 1 and batch_size % world:
        raise ValueError(
            f"batch size {batch_size} does not divide among the {world} processes of torchrun "
            f"(--nproc_per_node x nodes); use a --batch-size that is a multiple of {world}"
        )


def barrier() -> None:
    if current().enabled:
        dist.barrier()


def main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give its return value to every rank; an exception on
    rank 0 is raised on every rank (so a refused output directory stops all of them with
    the same line instead of leaving the others waiting)."""
    r = current()
    if not r.enabled:
        return fn()
    box: list = [None]
    if r.is_main:
        try:
            box[0] = ("ok", fn())
        except Exception as e:  # re-raised below, on every rank
            box[0] = ("error", e)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def broadcast(value: T) -> T:
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if not current().enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ---------------------------------------------------------------------- data
def rows(t: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of a global batch (B, ...) -> (B / W, ...)."""
    r = current()
    if not r.enabled:
        return t
    n = t.shape[0] // r.world_size
    return t[r.rank * n : (r.rank + 1) * n]


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rows`: every rank's (B / W, ...) share -> the global (B, ...)."""
    r = current()
    if not r.enabled:
        return t
    parts = [torch.empty_like(t) for _ in range(r.world_size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def row_split(loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    """``loss_of(x, y) -> (B, T)`` computed on this rank's rows and gathered: every rank
    returns the global (B, T) losses (the identity in a single process)."""
    if not current().enabled:
        return loss_of
    return lambda x, y: gather_rows(loss_of(rows(x), rows(y)))


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """Mean of a scalar over the ranks (each rank's mean over equally many rows)."""
    r = current()
    if not r.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / r.world_size


# ---------------------------------------------------------------------- models
def layer_stack(model: nn.Module) -> nn.ModuleList | None:
    """The model's transformer blocks: the ModuleList holding the most parameters (the
    built-in GPT's ``transformer.h``; ``model.layers``, ``gpt_neox.layers``, ``transformer.h``
    of the Hugging Face families)."""
    best, size = None, 0
    for m in model.modules():
        if isinstance(m, nn.ModuleList):
            n = sum(p.numel() for p in m.parameters())
            if n > size:
                best, size = m, n
    return best


def data_parallel(model: nn.Module, device: str) -> nn.Module:
    """The module a training step calls: ``model`` itself in one process; a DDP wrapper
    around it (gradients averaged over the ranks); or, with ``--parallel fsdp``, ``model``
    sharded in place by FSDP2. Build the optimizer after this call (FSDP2 replaces the
    parameters by sharded DTensors)."""
    r = current()
    if not r.enabled:
        return model
    if _mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(torch.device(device).type, (r.world_size,))
        for block in layer_stack(model) or []:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    from torch.nn.parallel import DistributedDataParallel

    dev = torch.device(device)
    ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """A sharded (FSDP2 DTensor) tensor gathered whole; any other tensor as it is. A
    collective under FSDP: every rank must call it, in the same order."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def shard_like(reference: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """``full`` laid out as ``reference`` is: sharded like it when it is an FSDP2 DTensor."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(reference, DTensor) and full.shape == reference.shape:
        return distribute_tensor(full.to(reference.device), reference.device_mesh, reference.placements)
    return full
