"""Synthetic tasks whose answer is known, generated on the fly from a seed.

``precache`` (the paper's §4 task): x_n ~ N(0, 1), z_n ~ Bernoulli(p), input (x_n, z_n),

    y_n = z_n * sum_{i=shift}^{shift+K-1} f(x_{n-i}) + (1 - z_n) * x_n,   f(x) = sin(a x),

with zeros before the start and ``shift = 1``. f(x_n) never helps y_n itself, so a model
trained with the myopic gradient has no reason to compute it at position n and should do
no better than the trivial predictor (1 - z_n) x_n. A vanilla model computes f(x_n) at n
(layer 1) and sums it later (layer 2).

``breadcrumbs`` is the control: ``shift = 0``, the window includes the current position, so
f(x_n) helps the present and the myopic model computes it too.

Batch ``index`` of split ``split`` is a pure function of (seed, split, index, stream): any
size is free and exactly reproducible, and a resumed run sees the same data order. The
training ``stream`` is the run's seed, so seeds differ in data order as well as in
initialisation, while a vanilla and a myopic run with the same seed see the same batches.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from myopia.config import check_field_types

SPLITS = ("train", "val", "test")


def split_generator(seed: int, split: str, index: int, stream: int = 0) -> torch.Generator:
    """A torch.Generator whose state depends only on (seed, split, index, stream).

    ``stream`` selects an independent training data order (the run's seed); held-out
    splits ignore it, so every run is evaluated on the same data."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    stream = stream if split == "train" else 0
    digest = hashlib.sha256(f"{seed}/{split}/{index}/{stream}".encode()).digest()
    g = torch.Generator()
    g.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return g


@dataclass
class WindowSumTask:
    """The pre-caching task (shift=1) and its breadcrumbs control (shift=0)."""

    name: str = "precache"
    seq_len: int = 16  # positions per sequence (the text task's default is 64)
    a: float = 3.0  # frequency of f(x) = sin(a x)
    window: int = 2  # K: how many positions are summed
    shift: int = 1  # 1: window starts one step back (pre-caching needed); 0: includes the present
    p: float = 1.0  # probability that z_n = 1 (the sum is asked for)
    huber_delta: float = 1.0
    seed: int = 0

    regression = True
    n_in = 2
    n_out = 1

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"task {self.name}: p must be in [0, 1], got {self.p}")
        if self.window < 1:
            raise ValueError(f"task {self.name}: window must be >= 1, got {self.window}")
        if self.shift < 0:
            raise ValueError(f"task {self.name}: shift must be >= 0, got {self.shift}")
        if self.seq_len < 2:
            raise ValueError(f"task {self.name}: seq_len must be >= 2, got {self.seq_len}")
        if self.seq_len <= self.window + self.shift - 1:
            raise ValueError(
                f"task {self.name}: seq_len={self.seq_len} is shorter than the window "
                f"(window={self.window}, shift={self.shift}); use seq_len > {self.window + self.shift - 1}"
            )
        if self.huber_delta <= 0:
            raise ValueError(f"task {self.name}: huber_delta must be > 0, got {self.huber_delta}")

    def to_dict(self) -> dict:
        return asdict(self)

    def batch(self, split: str, index: int, batch_size: int, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, T, 2) = (x, z) and targets (B, T, 1)."""
        g = split_generator(self.seed, split, index, stream)
        B, T = batch_size, self.seq_len
        x = torch.randn(B, T, generator=g)
        z = (torch.rand(B, T, generator=g) < self.p).float()
        fx = torch.sin(self.a * x)  # the feature (see feature())
        # window sum: s_n = sum_{i=shift}^{shift+K-1} f(x_{n-i}), zeros before the start
        padded = F.pad(fx, (self.shift + self.window - 1, 0))  # (B, T + K + shift - 1)
        s = padded.unfold(1, self.window, 1)[:, : T, :].sum(-1)  # windows ending at n - shift
        y = z * s + (1 - z) * x
        return torch.stack([x, z], dim=-1), y.unsqueeze(-1)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-position Huber loss (B, T)."""
        return F.huber_loss(out, y, delta=self.huber_delta, reduction="none").sum(-1)

    def feature(self, x: torch.Tensor) -> torch.Tensor:
        """The task's known feature at each position, f(x_n) = sin(a x_n): (B, T) from inputs
        (B, T, 2). A model that pre-caches computes it at position n (a probe target)."""
        return torch.sin(self.a * x[..., 0])

    def trivial_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-position loss of the best predictor without the pre-cached feature:
        (1 - z_n) x_n, i.e. 0 whenever the window sum is asked for (its mean is 0)."""
        pred = ((1 - x[..., 1]) * x[..., 0]).unsqueeze(-1)
        return self.loss(pred, y)


PRESETS = {
    # CPU scale (`myopia gap`: 1500 steps of 32 sequences, a 2-layer, 4-head GPT; the demo: 700 steps).
    # precache, K = 8: too wide a window for the model to read the raw inputs and compute the
    # sum after reading, so vanilla learns it by pre-caching — every seed computes sin(a x_t)
    # at t (probe R² >= 0.95 after block 1), which the demo table shows.
    "precache": dict(name="precache", seq_len=16, a=3.0, window=8, shift=1, p=1.0),
    # precache-read, K = 2: vanilla learns it too, but by reading x_{t-1}, x_{t-2} with two
    # heads and computing the feature *after* reading (probe R² of sin(a x_t) at t ~ 0): a
    # model needs no pre-caching when it can read the raw past.
    "precache-read": dict(name="precache-read", seq_len=16, a=3.0, window=2, shift=1, p=1.0),
    # breadcrumbs, K = 2: the control. A myopic model's only reason to compute sin(a x_t) at t
    # is the present term of the sum, 1/K of the signal vanilla gets; at K = 8 the paper's
    # variant is at 33-35% of the trivial loss after 1500 steps (docs/results/breadcrumbs-k8),
    # at K = 2 it learns within the budget.
    "breadcrumbs": dict(name="breadcrumbs", seq_len=16, a=3.0, window=2, shift=0, p=1.0),
    # The paper's setting (needs GPU-scale training, ~30M sequences).
    "precache-paper": dict(name="precache-paper", seq_len=64, a=10.0, window=10, shift=1, p=1.0),
    "breadcrumbs-paper": dict(name="breadcrumbs-paper", seq_len=64, a=10.0, window=10, shift=0, p=1.0),
}
