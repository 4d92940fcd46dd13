"""A small, readable GPT whose every attention layer runs under a gradient policy.

Design decisions:
* GPT-2 layout and names (``wte``, ``wpe``, ``h.N.ln_1``, ``attn.c_attn``, ``attn.c_proj``,
  ``mlp.c_fc``, ``mlp.c_proj``, ``ln_f``, ``lm_head``), pre-LayerNorm, learned positions.
* Input is either token ids (B, T) — ``wte`` is an embedding — or real-valued vectors
  (B, T, n_in) — ``wte`` is a linear map. The head is either token logits or ``n_out``
  real values (regression tasks).
* The forward pass takes a :class:`GradientPolicy`; forward values never depend on it.
  Where the off-band keys/values come from (own detached keys/values, the live projections
  of the detached attention input for ``detach="hidden"``, or a frozen past) is decided by
  :func:`myopia.attention.constant_past`, shared with the Hugging Face models.
* A frozen reference model can supply "everything the past provides": ``past_states``
  records, per layer, its attention input and keys/values, and ``forward(past=...)``
  uses them for every off-band pair (used by the local myopia bonus).
* ``GPTConfig(bigram=True)`` is the paper's *transformer-bigram* baseline: the same
  model with every off-diagonal key and value set to zero, so the past is never read and
  the output at t depends on the input at t only (and on t). Unlike a gradient policy
  this *changes forward values*; it is a property of the model, not of the policy, which
  it ignores (only the diagonal pair exists to carry gradient).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from myopia.attention import constant_past, policy_attention
from myopia.config import check_field_types
from myopia.policy import MYOPIC, GradientPolicy


@dataclass
class GPTConfig:
    """Shape of the built-in GPT."""

    block_size: int = 64  # longest sequence the position table covers
    vocab_size: int = 256  # token vocabulary (ignored when n_in > 0 and n_out > 0)
    n_in: int = 0  # > 0: inputs are real vectors of this size instead of token ids
    n_out: int = 0  # > 0: the head predicts this many real values instead of token logits
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    mlp_ratio: int = 4
    bias: bool = True
    bigram: bool = False  # transformer-bigram baseline: every off-diagonal key/value is zero (the past is not read)

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("block_size", "n_layer", "n_head", "n_embd", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if (self.n_in == 0 or self.n_out == 0) and self.vocab_size < 2:
            raise ValueError(f"GPTConfig.vocab_size must be >= 2 for token input/output, got {self.vocab_size}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PastState:
    """What one layer of a (frozen) model provides to later positions."""

    attn_in: torch.Tensor  # (B, T, C) input of the attention layer (after ln_1)
    k: torch.Tensor  # (B, nh, T, hs)
    v: torch.Tensor  # (B, nh, T, hs)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.n_embd = cfg.n_embd
        self.bigram = cfg.bigram
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        B, T, C = t.shape
        return t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)

    def kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of an attention input x (B, T, C), with the live projections."""
        C = self.n_embd
        kv = F.linear(x, self.c_attn.weight[C:], None if self.c_attn.bias is None else self.c_attn.bias[C:])
        k, v = kv.split(C, dim=2)
        return self._heads(k), self._heads(v)

    def forward(
        self,
        x: torch.Tensor,
        policy: GradientPolicy,
        past: PastState | None = None,
        impl: str = "auto",
        record: list | None = None,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)  # (B, nh, T, hs)
        if record is not None:
            record.append(PastState(attn_in=x.detach(), k=k.detach(), v=v.detach()))
        if self.bigram:
            # Every off-diagonal pair reads a zero key and value: the scores are 0 there and
            # y_j = P_jj v_j with P_jj = exp(s_jj) / (exp(s_jj) + j). Only the diagonal is live.
            zero = torch.zeros_like(k)
            y = policy_attention(q, k, v, MYOPIC, k_off=zero, v_off=zero, impl="reference", off_equals_live=False)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        off = constant_past(policy, x, past, self.kv)
        y = policy_attention(
            q, k, v, policy, k_off=off.k_off, v_off=off.v_off, impl=impl, off_equals_live=off.off_equals_live
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, cfg.mlp_ratio * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.mlp_ratio * cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x, policy, past=None, impl="auto", record=None):
        x = x + self.attn(self.ln_1(x), policy, past=past, impl=impl, record=record)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        wte = nn.Linear(cfg.n_in, cfg.n_embd, bias=cfg.bias) if cfg.n_in else nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.transformer = nn.ModuleDict(
            dict(
                wte=wte,
                wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
                h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
                ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
            )
        )
        n_head_out = cfg.n_out if cfg.n_out else cfg.vocab_size
        self.lm_head = nn.Linear(cfg.n_embd, n_head_out, bias=bool(cfg.n_out))
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: scale residual projections by depth
                nn.init.normal_(p, mean=0.0, std=0.02 / (2 * cfg.n_layer) ** 0.5)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    @property
    def regression(self) -> bool:
        return bool(self.config.n_out)

    def forward(
        self,
        x: torch.Tensor,
        policy: GradientPolicy | None = None,
        *,
        past: list[PastState] | None = None,
        impl: str = "auto",
        return_hidden: bool = False,
        record: list | None = None,
    ):
        """x: (B, T) token ids or (B, T, n_in) vectors -> (B, T, vocab) logits or (B, T, n_out).

        ``return_hidden`` also returns the residual stream entering each block and after
        ``ln_f``: a list of n_layer + 1 tensors (B, T, C), for probes.
        """
        policy = policy or GradientPolicy()
        T = x.shape[1]
        if T > self.config.block_size:
            raise ValueError(
                f"sequence length {T} exceeds the model's block_size {self.config.block_size}; "
                f"raise block_size or shorten the sequences"
            )
        if past is not None and self.config.bigram:
            raise ValueError("a transformer-bigram model reads no past; do not pass past= to it")
        if past is not None and len(past) != len(self.transformer.h):
            raise ValueError(f"past has {len(past)} layers, the model has {len(self.transformer.h)}")
        pos = torch.arange(T, device=x.device)
        h = self.transformer.wte(x) + self.transformer.wpe(pos)  # (B, T, C)
        hidden = []
        for i, block in enumerate(self.transformer.h):
            hidden.append(h)
            h = block(h, policy, past=None if past is None else past[i], impl=impl, record=record)
        h = self.transformer.ln_f(h)
        hidden.append(h)
        out = self.lm_head(h)
        return (out, hidden) if return_hidden else out

    @torch.no_grad()
    def past_states(self, x: torch.Tensor) -> list[PastState]:
        """Per-layer attention inputs and keys/values of this model on x (no gradient)."""
        record: list[PastState] = []
        self.forward(x, record=record)
        return record
