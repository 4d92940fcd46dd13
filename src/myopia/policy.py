"""Gradient policies: which (query j, key i) pairs carry gradient in attention.

A policy never changes forward values. It only decides, for every attention layer and
every query position j, whether the key/value computed at position i <= j is *live*
(gradient flows back into the computation at i) or a *constant*.

* ``horizon=None, block=None``  vanilla: every causal pair is live.
* ``horizon=h``                 band: pair (j, i) is live iff j - i <= h. ``h = 0`` is the
                                myopic gradient. The horizon is *per attention hop*: with
                                ``n_layer`` layers a gradient can still travel up to
                                ``n_layer * h`` positions back through a chain of hops.
* ``block=c``                   block horizon: positions are grouped into consecutive blocks
                                of c; a pair is live iff both lie in the same block. This is
                                exact at any depth: the loss at j trains the computation at
                                i iff i and j share a block (c = 1 is myopic).

``detach`` says what "constant" means for an off-band pair:

* ``"kv"`` (strict, default): the key/value *tensors* of position i are constants for query
  j, so W_K/W_V only receive in-band gradient. With ``horizon=0`` this is exactly the
  myopic gradient G(0) = sum_j dL_j/dtheta_j.
* ``"hidden"`` (the paper's public code): the *input* of the attention layer at i is a
  constant, and its key/value are recomputed with the live projections, so W_K/W_V still
  learn from later losses through past positions while nothing upstream of the
  projections does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DETACH_VARIANTS = ("kv", "hidden")
# how every table names a myopic variant: strict myopia, and the paper's (the one its numbers compare with)
VARIANT_LABELS = {"kv": "myopic (strict, exact G(0))", "hidden": "myopic (paper: W_K/W_V still trained by later losses)"}


@dataclass(frozen=True)
class GradientPolicy:
    """Where gradient may flow in attention. See the module docstring."""

    horizon: int | None = None
    block: int | None = None
    detach: str = "kv"

    def __post_init__(self) -> None:
        if self.horizon is not None and self.block is not None:
            raise ValueError(
                "GradientPolicy: give either horizon=h (band) or block=c (block horizon), not both"
            )
        if self.horizon is not None:
            if isinstance(self.horizon, bool) or not isinstance(self.horizon, int):
                raise ValueError(f"GradientPolicy: horizon must be an int >= 0 or None, got {self.horizon!r}")
            if self.horizon < 0:
                raise ValueError(
                    f"GradientPolicy: horizon must be >= 0 (0 = myopic, None = vanilla), got {self.horizon}"
                )
        if self.block is not None:
            if isinstance(self.block, bool) or not isinstance(self.block, int) or self.block < 1:
                raise ValueError(f"GradientPolicy: block must be an int >= 1 (1 = myopic), got {self.block!r}")
        if self.detach not in DETACH_VARIANTS:
            raise ValueError(
                f"GradientPolicy: unknown detach variant {self.detach!r}; use one of {', '.join(DETACH_VARIANTS)}"
            )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def myopic(cls, detach: str = "kv") -> "GradientPolicy":
        return cls(horizon=0, detach=detach)

    @classmethod
    def parse(cls, text: str, detach: str = "kv") -> "GradientPolicy":
        """Parse ``vanilla``/``inf``, ``myopic``, ``h=3``/``3`` or ``block=4``."""
        s = str(text).strip().lower()
        if s in ("vanilla", "inf", "none"):
            return cls(detach=detach)
        if s == "myopic":
            return cls(horizon=0, detach=detach)
        if s.startswith("block="):
            return cls(block=_parse_int(s[6:], text), detach=detach)
        if s.startswith("h="):
            s = s[2:]
        return cls(horizon=_parse_int(s, text), detach=detach)

    # ------------------------------------------------------------------ queries
    @property
    def is_vanilla(self) -> bool:
        return self.horizon is None and self.block is None

    @property
    def is_myopic(self) -> bool:
        return self.horizon == 0 or self.block == 1

    @property
    def name(self) -> str:
        if self.is_vanilla:
            base = "vanilla"
        elif self.is_myopic:
            base = "myopic"
        elif self.horizon is not None:
            base = f"h{self.horizon}"
        else:
            base = f"block{self.block}"
        return base if self.detach == "kv" or self.is_vanilla else f"{base}-{self.detach}"

    def is_vanilla_at(self, T: int) -> bool:
        """True when, at sequence length T, every causal pair is live."""
        if self.is_vanilla:
            return True
        if self.horizon is not None:
            return self.horizon >= T - 1
        return self.block >= T

    def live_mask(self, T: int, device: torch.device | str | None = None) -> torch.Tensor:
        """(T, T) bool, [query j, key i]: True where gradient flows (causal pairs only)."""
        j = torch.arange(T, device=device).unsqueeze(1)
        i = torch.arange(T, device=device).unsqueeze(0)
        causal = i <= j
        if self.is_vanilla:
            return causal
        if self.horizon is not None:
            return causal & (j - i <= self.horizon)
        return causal & (j // self.block == i // self.block)

    def to_dict(self) -> dict:
        return {"horizon": self.horizon, "block": self.block, "detach": self.detach, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> "GradientPolicy":
        """Inverse of :meth:`to_dict` (``name`` is derived, so it is not read)."""
        return cls(horizon=d.get("horizon"), block=d.get("block"), detach=d.get("detach", "kv"))


def _parse_int(s: str, original: str) -> int:
    try:
        v = float(s)
    except ValueError:
        raise ValueError(
            f"cannot read gradient policy {original!r}: use vanilla, myopic, inf, an integer horizon or block=C"
        ) from None
    if math.isinf(v):
        raise ValueError("use 'inf' or 'vanilla' for an unbounded horizon")
    if v != int(v):
        raise ValueError(f"gradient policy {original!r}: horizon must be an integer")
    return int(v)


VANILLA = GradientPolicy()
MYOPIC = GradientPolicy(horizon=0)
