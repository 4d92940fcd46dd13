"""Myopic attention for short contexts: materialised scores, the myopic gradient written directly.

At short contexts (T <= :data:`SHORT_CONTEXT_MAX_T` on CPU) the fused flash kernel's fixed
cost per call outweighs its savings: the (T, T) score matrix of one head is smaller than a
few cache lines per query, and the myopic path on the fused kernel adds a dozen small
passes over (B, nh, T, hs) after the fused backward. Here the scores are materialised in one
batched matmul, and the backward is written for the myopic gradient instead of derived
from the vanilla one:

    S = c Q K'^T + bias,   P = softmax(S),   O = P V'                   (forward, as vanilla)
    dP = dO V'^T,   dS = P * (dP - rowsum(P * dP)),   dQ = c dS K'      (vanilla dQ)
    dv_i = P_ii dO_i,   dk_i = c dS_ii q_i                              (the diagonal pair only)

with ``dS_ii = P_ii dO_i.(v_i - O_i)``, the same diagonal terms as
:class:`myopia.attention._MyopicFlashCPU`. Strict myopia (``detach="kv"``) never forms the
full dK', dV' (two of the four backward matmuls of vanilla attention are skipped); the
paper's variant (``detach="hidden"``, K', V' carry gradient) gets ``c dS^T Q - dk`` and
``P^T dO - dv``, so each pair is counted once.

Saved for backward: q, k', v' as given (views of the layer's projection, which vanilla
attention keeps as well) and P ((B*nh, T, T)) in place of the fused kernel's output and
row log-sum-exp: T / hs times the output's size, so 2x at T = 64, hs = 32 (about 2 floats
per token and layer more than vanilla in the sweep's models; the fused path, used above
64, saves exactly what vanilla saves). Recomputing P from
the row log-sum-exp instead (the flash way) was measured slower on CPU: ``logsumexp`` and
``exp`` over (T, T) cost more than the saved matmul. Exactness against the float64
reference is tested in tests/test_attention_fast.py; the choice of path and its threshold
come from ``benchmarks/throughput.py`` and ``benchmarks/step_time.py``.
"""

from __future__ import annotations

import os

import torch

# Longest context served here. Measured on a 2-core x86-64 CPU, 1 thread, hs = 32, B = 32:
# fwd+bwd of one attention layer vs torch's fused causal attention was 0.94-0.98x at T <= 64
# (the fused myopic path 1.1-1.4x) and 1.14-1.40x at T = 96-128, where the fused path wins.
SHORT_CONTEXT_MAX_T = 64
_DTYPES = (torch.float32, torch.float64)
# On by default: the fastest exact path at these lengths. MYOPIA_SHORT_ATTENTION=0 turns it off
# (the fused path for every length), e.g. to compare with results computed before it existed:
# both are exact, but they round differently, and small models' training is chaotic enough
# that another rounding gives another trajectory (within the spread over seeds).
ENABLED = os.environ.get("MYOPIA_SHORT_ATTENTION", "1") != "0"


def serves(q: torch.Tensor) -> bool:
    """Is this the fastest exact myopic path for q (B, nh, T, hs)? CPU, float32/64, T <= 64."""
    return ENABLED and q.device.type == "cpu" and q.dtype in _DTYPES and q.shape[-2] <= SHORT_CONTEXT_MAX_T


_CAUSAL_BIAS: dict[tuple, torch.Tensor] = {}


def _causal_bias(T: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(1, T, T) additive causal bias (finfo.min above the diagonal), built once per shape."""
    key = (T, dtype, device)
    bias = _CAUSAL_BIAS.get(key)
    if bias is None:
        future = torch.ones(T, T, dtype=torch.bool, device=device).triu_(1)
        bias = torch.zeros(1, T, T, dtype=dtype, device=device).masked_fill_(future, torch.finfo(dtype).min)
        _CAUSAL_BIAS[key] = bias
    return bias


def short_myopic_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_off: torch.Tensor,
    v_off: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """Myopic attention, (B, nh, T, hs) in and out. k_off, v_off equal k, v in value;
    ``bias``: None (plain causal) or an additive (B|1, nh|1, T, T) bias that already holds
    causality and gives every row at least one readable key."""
    return _ShortMyopic.apply(q, k, v, k_off, v_off, bias, scale)


class _ShortMyopic(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, k_off, v_off, bias, scale):
        B, nh, T, hs = q.shape
        q3, k3, v3 = (t.reshape(B * nh, T, hs) for t in (q, k_off, v_off))  # (B*nh, T, hs)
        if bias is None:
            bias3 = _causal_bias(T, q.dtype, q.device)
        elif bias.shape[0] == 1 and bias.shape[1] == 1:
            bias3 = bias.reshape(1, T, T)
        else:
            bias3 = bias.expand(B, nh, T, T).reshape(B * nh, T, T)
        p = torch.softmax(torch.baddbmm(bias3, q3, k3.transpose(1, 2), alpha=scale), dim=-1)  # (B*nh, T, T)
        out = torch.bmm(p, v3)
        # q, k', v' as given (views of the layer's qkv projection, which vanilla attention keeps
        # too); their (B*nh, T, hs) copies are transient and made again in backward
        ctx.save_for_backward(q, k_off, v_off, p)
        ctx.scale = scale
        return out.view(B, nh, T, hs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        q, k, v, p = ctx.saved_tensors  # (B, nh, T, hs) x 3, (B*nh, T, T); k, v are k', v'
        B, nh, T, hs = dout.shape
        scale = ctx.scale
        q, k, v, do = (t.reshape(B * nh, T, hs) for t in (q, k, v, dout))  # (B*nh, T, hs)
        need_k, need_v, need_k_off, need_v_off = ctx.needs_input_grad[1:5]
        ds = torch.bmm(do, v.transpose(1, 2))  # dP, (B*nh, T, T)
        ds = ds.sub_((ds * p).sum(-1, keepdim=True)).mul_(p)  # dS = P * (dP - rowsum(P * dP)), in place
        dq = torch.bmm(ds, k).mul_(scale)
        p_diag = torch.diagonal(p, dim1=-2, dim2=-1).unsqueeze(-1)  # (B*nh, T, 1)
        dv = do * p_diag
        dk = q * torch.diagonal(ds, dim1=-2, dim2=-1).unsqueeze(-1).mul(scale) if (need_k or need_k_off) else None
        dk_off = torch.bmm(ds.transpose(1, 2), q).mul_(scale).sub_(dk) if need_k_off else None
        dv_off = torch.bmm(p.transpose(1, 2), do).sub_(dv) if need_v_off else None

        def heads(t):
            return None if t is None else t.view(B, nh, T, hs)

        return (heads(dq), heads(dk) if need_k else None, heads(dv) if need_v else None, heads(dk_off),
                heads(dv_off), None, None)
