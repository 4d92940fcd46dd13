"""Attention that honours a :class:`~myopia.policy.GradientPolicy`.

One entry point, :func:`policy_attention`, with two implementations that must agree:

* ``reference`` materialises the (T, T) scores. For every (query j, key i) pair the key
  and value come from the *live* tensors ``k, v`` when the policy says the pair is live,
  and from the *constant* tensors ``k_off, v_off`` otherwise. Any policy, any mask, any
  dtype (float64 for the exactness tests). This is the oracle the fast path is tested
  against.
* ``fast`` serves the myopic policy (horizon 0 / block 1) with a fused kernel. It runs the
  fused attention with the constant keys/values, then adds a term that is exactly zero
  in value but carries the diagonal gradient into the live ``k_i, v_i``.

Derivation of the fast path. Let c be the score scale, ``O = softmax(c Q K'^T) V'`` the
fused output on the constant K', V' (equal in value to K, V), ``lse_i`` its row
log-sum-exp and ``P_ii = exp(c q_i.k_i - lse_i)`` the diagonal attention weight. The
fused kernel already yields the vanilla dQ (dQ does not depend on which pairs are live).
The diagonal pair contributes ``P_ii v_i`` to ``O_i``; its gradient is

    dv_i = P_ii dO_i,        dk_i = c P_ii (dO_i . (v_i - O_i)) q_i.

Both come out of

    corr_i = sg(P_ii) (v_i - v'_i) + (p(k_i) - p(k'_i)) sg(v'_i - O_i),
    p(k) = exp(c sg(q_i).k - sg(lse_i)),

where sg is stop-gradient. ``corr`` is zero in value because k' = k and v' = v in value.
When K', V' carry gradient themselves (``detach="hidden"``: keys/values recomputed from a
detached input with live projections) the ``- v'_i`` and ``- p(k'_i)`` parts remove the
diagonal from that gradient, so each pair is counted exactly once. The extra cost is
O(T d) per head; the row log-sum-exp comes from the fused kernel and needs no gradient.

On CPU the same two formulas are applied directly in a custom backward
(``_MyopicFlashCPU``): the fused kernel's forward and backward run exactly as for vanilla
attention, dv_i and dk_i above are written into the live k, v, and in the ``hidden``
variant k', v' receive the fused dK', dV' minus them. Autograd then keeps only what vanilla
attention keeps (q, k, v, O, lse); the correction term would keep one more (B, nh, T, hs)
tensor per layer (``sg(v' - O)``), about 10% more saved activations in the built-in GPT.
The correction term remains the device-independent path. On CUDA, strict myopia without
a mask has its own backward (:mod:`myopia.attention_triton`, Triton kernels; needs triton):
it computes dQ as vanilla attention does and only the diagonal dk_i, dv_i above, never the
full dK', dV' that a fused backward forms and strict myopia drops.

Precision. In a bfloat16/float16 model the fused kernels accumulate in float32 and return
the row log-sum-exp in float32; the diagonal terms are computed the same way: P_ii, dv_i
and dk_i (and dK' - dk, dV' - dv) in at least float32 (:func:`accumulation_dtype`), then
cast to the model's dtype, which is also the dtype every path returns. Computing P_ii from
a bfloat16 q_i.k_i instead doubles the error of dk against vanilla attention's own.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, NamedTuple

import torch
import torch.nn.functional as F

from myopia import attention_short
from myopia.policy import GradientPolicy

if TYPE_CHECKING:
    from myopia.model import PastState

IMPLS = ("auto", "reference", "fast")


class ConstantPast(NamedTuple):
    """The constant keys/values of off-band pairs, in the form :func:`policy_attention` takes."""

    k_off: torch.Tensor | None  # None: the live keys, detached
    v_off: torch.Tensor | None
    off_equals_live: bool  # equal in value to the live k, v (the model's own past)


def constant_past(
    policy: GradientPolicy,
    attn_in: torch.Tensor,
    past: PastState | None,
    project: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> ConstantPast:
    """Where the keys/values of the off-band (constant) pairs of one attention layer come from.

    Written once here so that the built-in GPT and every Hugging Face model agree on it.
    There are three sources:

    * the model's own past, ``detach="kv"`` (strict myopia, exactly G(0)): the layer's own
      keys/values, detached. Returned as ``None``: :func:`policy_attention` then uses
      ``k.detach()``, ``v.detach()``.
    * the model's own past, ``detach="hidden"`` (the paper's variant): keys/values
      recomputed with the *live* projections from the *detached* attention input, so
      W_K/W_V still learn from later losses through the off-band pairs. Skipped when the
      policy leaves every pair of this length live (nothing would read them).
    * a frozen reference model's past (``past``; the local myopia bonus): its keys/values
      for ``detach="kv"``, or its attention input projected with the live projections for
      ``detach="hidden"``. These differ in value from the live keys/values, so
      ``off_equals_live`` is False (which also keeps attention off the fused myopic path).

    attn_in: (B, T, C) this layer's attention input. past: this layer's
    :class:`~myopia.model.PastState` from the frozen model, or None. project(h) -> (k, v):
    keys/values of an attention input h with this layer's live projections (the built-in
    GPT: ``CausalSelfAttention.kv``; HF models: a capture pass of the attention module).
    """
    if policy.detach == "hidden" and (past is not None or not policy.is_vanilla_at(attn_in.shape[1])):
        k_off, v_off = project((attn_in if past is None else past.attn_in).detach())
    elif past is not None:
        k_off, v_off = past.k.detach(), past.v.detach()
    else:
        k_off = v_off = None
    return ConstantPast(k_off, v_off, past is None)


def policy_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    policy: GradientPolicy | None = None,
    *,
    k_off: torch.Tensor | None = None,
    v_off: torch.Tensor | None = None,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
    impl: str = "auto",
    off_equals_live: bool = True,
) -> torch.Tensor:
    """Causal attention under a gradient policy.

    q, k, v:      (B, nh, T, hs) — grouped-query heads must already be repeated.
    k_off, v_off: (B, nh, T, hs) keys/values used for off-band pairs. Default: ``k.detach()``,
                  ``v.detach()`` (strict myopia). :func:`constant_past` derives them (and
                  ``off_equals_live``) for every policy and past.
    attn_mask:    optional bool (B|1, nh|1, T, T), True where query j may read key i; it must
                  already contain causality. None means plain causal. A query that may read
                  no key at all (left padding) reads its own key instead, so no NaN reaches
                  the gradient; its output is padding and carries no loss.
    off_equals_live: k_off/v_off equal k/v in value (true unless the past comes from another
                  model). The fast path needs it.
    Returns (B, nh, T, hs).
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown attention impl {impl!r}; use one of {', '.join(IMPLS)}")
    policy = policy or GradientPolicy()
    T = q.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    all_live = policy.is_vanilla_at(T) and off_equals_live
    if k_off is None:
        k_off = k.detach()
    if v_off is None:
        v_off = v.detach()
    if attn_mask is not None:
        attn_mask = _read_self_when_empty(attn_mask, T)

    if impl == "reference":
        return reference_attention(q, k, v, policy, k_off=k_off, v_off=v_off, attn_mask=attn_mask, scale=scale)
    if all_live:
        return _sdpa(q, k, v, attn_mask, scale)
    if policy.is_myopic and off_equals_live:
        return myopic_fast_attention(q, k, v, k_off, v_off, attn_mask=attn_mask, scale=scale)
    if impl == "fast":
        raise ValueError(
            f"the fast attention path serves the myopic policy with the model's own past only; "
            f"policy {policy.name!r} needs impl='reference' (or 'auto')"
        )
    return reference_attention(q, k, v, policy, k_off=k_off, v_off=v_off, attn_mask=attn_mask, scale=scale)


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    policy: GradientPolicy,
    *,
    k_off: torch.Tensor,
    v_off: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    scale: float,
) -> torch.Tensor:
    """Materialised-score attention: live pairs read k/v, the others k_off/v_off."""
    T = q.shape[-2]
    allowed = _allowed(attn_mask, T, q.device)
    live = policy.live_mask(T, q.device)  # (T, T)
    s_live = (q @ k.transpose(-2, -1)) * scale  # (B, nh, T, T)
    s_off = (q @ k_off.transpose(-2, -1)) * scale
    s = torch.where(live, s_live, s_off)
    s = s.masked_fill(~allowed, torch.finfo(s.dtype).min)
    p = torch.softmax(s, dim=-1)
    p = p * allowed  # rows that may read nothing (padding) output zeros
    livef = live.to(p.dtype)
    return (p * livef) @ v + (p * (1 - livef)) @ v_off


def myopic_fast_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_off: torch.Tensor,
    v_off: torch.Tensor,
    *,
    attn_mask: torch.Tensor | None = None,
    scale: float,
) -> torch.Tensor:
    """Myopic attention: fused kernel on (q, k_off, v_off), the diagonal gradient added.

    On CPU at short contexts (T <= 64) the scores are materialised and the myopic backward
    is written directly (:mod:`myopia.attention_short`). Otherwise on CPU a custom autograd
    function runs the fused kernel's own forward and backward and
    writes the diagonal terms straight into dk, dv (no saved tensor beyond what vanilla
    attention saves). On CUDA, strict myopia without a mask runs the Triton kernels of
    :mod:`myopia.attention_triton` (a backward that computes dQ and only the diagonal dk, dv)
    when triton is installed. Elsewhere the zero-valued correction term of the module
    docstring carries the diagonal (:func:`myopic_attention_by_correction`).
    :func:`myopic_path` names the path taken.
    """
    path = myopic_path(q, k_off, v_off, attn_mask)
    if path == "short":  # short contexts: materialised scores beat the fused kernel's fixed cost
        return attention_short.short_myopic_attention(
            q, k, v, k_off, v_off, None if attn_mask is None else _bias(attn_mask, q.dtype), scale
        )
    if path == "flash_cpu":
        return _MyopicFlashCPU.apply(q, k, v, k_off, v_off, attn_mask, scale)
    if path == "triton":
        from myopia import attention_triton

        return attention_triton.myopic_attention(q, k, v, scale)
    return myopic_attention_by_correction(q, k, v, k_off, v_off, attn_mask=attn_mask, scale=scale)


MYOPIC_PATHS = ("short", "flash_cpu", "triton", "correction")


def myopic_path(q: torch.Tensor, k_off: torch.Tensor, v_off: torch.Tensor, attn_mask: torch.Tensor | None) -> str:
    """The implementation :func:`myopic_fast_attention` runs for q (B, nh, T, hs), one of
    :data:`MYOPIC_PATHS`."""
    if attention_short.serves(q):
        return "short"
    if q.device.type == "cpu" and _cpu_flash_supports(q):
        return "flash_cpu"
    if q.device.type == "cuda":
        from myopia import attention_triton  # imports triton (optional) only where its kernels can run

        if attention_triton.serves(q, k_off, v_off, attn_mask):
            return "triton"
    return "correction"


def myopic_attention_by_correction(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_off: torch.Tensor,
    v_off: torch.Tensor,
    *,
    attn_mask: torch.Tensor | None = None,
    scale: float,
) -> torch.Tensor:
    """Any device: fused attention on (q, k_off, v_off) plus the zero-valued correction term.

    The term is computed in :func:`accumulation_dtype` and cast to the output's dtype (it is
    exactly zero in value, so the output is the fused kernel's)."""
    out, lse = sdpa_with_lse(q, k_off, v_off, attn_mask, scale)  # (B, nh, T, hs), (B, nh, T)
    acc = accumulation_dtype(q.dtype)
    qd = q.detach().to(acc)
    lse = lse.detach().to(acc).unsqueeze(-1)  # (B, nh, T, 1)
    p_live = torch.exp((qd * k.to(acc)).sum(-1, keepdim=True) * scale - lse)
    p_off = torch.exp((qd * k_off.to(acc)).sum(-1, keepdim=True) * scale - lse)
    if attn_mask is not None:
        diag = _diag_allowed(attn_mask, q.shape[-2], q.device)
        p_live = p_live * diag
        p_off = p_off * diag
    v_minus_out = (v_off.detach().to(acc) - out.detach().to(acc))  # (B, nh, T, hs)
    corr = p_live.detach() * (v.to(acc) - v_off.to(acc)) + (p_live - p_off) * v_minus_out
    return out + corr.to(out.dtype)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the diagonal terms are computed in: float32 for 16-bit models, else the model's."""
    return torch.promote_types(dtype, torch.float32)


def _cpu_flash_supports(q: torch.Tensor) -> bool:
    return q.dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _read_self_when_empty(attn_mask: torch.Tensor, T: int) -> torch.Tensor:
    """Rows of a bool mask that allow no key get their diagonal (fused kernels give NaN there)."""
    empty = ~_allowed(attn_mask, T, attn_mask.device).any(-1, keepdim=True)  # (.., T, 1)
    return attn_mask | (empty & torch.eye(T, dtype=torch.bool, device=attn_mask.device))


def _diag_allowed(attn_mask: torch.Tensor, T: int, device) -> torch.Tensor:
    """(B|1, nh|1, T, 1) float-able bool: may query i read its own key?"""
    return torch.diagonal(_allowed(attn_mask, T, device), dim1=-2, dim2=-1).unsqueeze(-1)


class _MyopicFlashCPU(torch.autograd.Function):
    """Fused CPU flash attention on (q, k_off, v_off) whose backward routes the diagonal.

    Forward: ``O, lse = flash(q, k', v')`` exactly as vanilla attention. Backward: the fused
    backward gives the vanilla dQ and the full dK', dV' (every causal pair). The diagonal
    pair's part, with ``P_ii = exp(c q_i.k_i - lse_i)``, is

        dv_i = P_ii dO_i,    dk_i = c P_ii (dO_i . (v_i - O_i)) q_i,

    and goes to the live k, v; the rest (dK' - dk, dV' - dv) goes to k', v' when they carry
    gradient (``detach="hidden"``), and is dropped otherwise (strict myopia). The saved
    tensors are the ones vanilla attention saves, so memory matches vanilla.
    """

    @staticmethod
    def forward(ctx, q, k, v, k_off, v_off, attn_mask, scale):
        out, lse = _flash_cpu(q, k_off, v_off, attn_mask, scale)
        ctx.save_for_backward(q, k_off, v_off, out, lse, attn_mask)
        ctx.scale = scale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        q, k, v, out, lse, attn_mask = ctx.saved_tensors  # k, v equal the live k, v in value
        scale = ctx.scale
        dtype, acc = q.dtype, accumulation_dtype(q.dtype)  # .to(acc) is a no-op for float32/float64
        bias = None if attn_mask is None else _bias(attn_mask, q.dtype)
        dq, dk_all, dv_all = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            dout, q, k, v, out, lse, 0.0, attn_mask is None, attn_mask=bias, scale=scale
        )
        need_k, need_v, need_k_off, need_v_off = ctx.needs_input_grad[1:5]
        if not (need_k_off or need_v_off):
            del dk_all, dv_all  # strict myopia: off-diagonal pairs are constants; free them now
        # P_ii = exp(c q_i.k_i - lse_i), (B, nh, T, 1), in acc. Row dots with vecdot and small
        # in-place ops: this runs cache-cold after the fused backward, so passes count.
        q_acc = q.to(acc)
        p_diag = torch.linalg.vecdot(q_acc, k.to(acc)).mul_(scale).sub_(lse.to(acc)).exp_().unsqueeze(-1)
        if attn_mask is not None:
            p_diag = p_diag * _diag_allowed(attn_mask, q.shape[-2], q.device)
        dv = dout.to(acc) * p_diag  # (B, nh, T, hs)
        dk = None
        if need_k or need_k_off:
            # c dS_ii = c P_ii dO_i.(v_i - O_i) = c dv_i.(v_i - O_i), (B, nh, T, 1)
            ds_diag = torch.linalg.vecdot(dv, v.to(acc) - out.to(acc)).mul_(scale).unsqueeze(-1)
            dk = q_acc * ds_diag  # (B, nh, T, hs)
        dk_off = (dk_all.to(acc) - dk).to(dtype) if need_k_off else None
        dv_off = (dv_all.to(acc) - dv).to(dtype) if need_v_off else None
        dk = dk.to(dtype) if need_k else None
        return dq, dk, dv.to(dtype) if need_v else None, dk_off, dv_off, None, None


def sdpa_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused causal attention (B, nh, T, hs) in q's dtype and the row log-sum-exp (B, nh, T)
    in at least float32, no grad: the CPU flash kernel, CUDA's memory-efficient kernel, or
    (where that kernel refuses the inputs, and on other devices) :func:`sdpa_with_chunked_lse`."""
    T = q.shape[-2]
    if q.device.type == "cpu":
        return _flash_cpu(q, k, v, attn_mask, scale)
    if q.device.type == "cuda":
        try:
            bias = None if attn_mask is None else _bias(attn_mask, q.dtype).expand(q.shape[0], q.shape[1], T, T)
            out, lse, _, _ = torch.ops.aten._scaled_dot_product_efficient_attention(
                q, k, v, bias, True, 0.0, attn_mask is None, scale=scale
            )
            return out, lse[..., :T]
        except RuntimeError as e:
            if not kernel_refused(e):  # out of memory, a device fault, a bug: never hidden
                raise
    return sdpa_with_chunked_lse(q, k, v, attn_mask, scale)


def sdpa_with_chunked_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Portable :func:`sdpa_with_lse`: the public fused kernel, and the log-sum-exp from the
    scores in row chunks of 256 (each (B, nh, 256, T)), in :func:`accumulation_dtype`."""
    T = q.shape[-2]
    out = _sdpa(q, k, v, attn_mask, scale)
    with torch.no_grad():
        acc = accumulation_dtype(q.dtype)
        allowed = _allowed(attn_mask, T, q.device)
        k_t = k.to(acc).transpose(-2, -1)  # (B, nh, hs, T)
        chunks = []
        for start in range(0, T, 256):
            s = (q[..., start : start + 256, :].to(acc) @ k_t) * scale
            s = s.masked_fill(~allowed[..., start : start + 256, :], float("-inf"))
            chunks.append(torch.logsumexp(s, dim=-1))
        lse = torch.cat(chunks, dim=-1)
    return out, lse


# What a fused kernel says when it does not serve some inputs (dtype, head size, alignment,
# GPU generation); any other RuntimeError is a real failure.
KERNEL_REFUSALS = ("not supported", "not implemented", "only supports", "supported at the moment",
                   "not correctly aligned", "no available kernel", "not compiled")


def kernel_refused(e: RuntimeError) -> bool:
    """Is ``e`` a fused kernel declining its inputs (fall back), not a failure (re-raise)?
    Out-of-memory is always a failure: falling back would only need more memory."""
    if isinstance(e, torch.OutOfMemoryError):
        return False
    text = str(e).lower()
    return "out of memory" not in text and any(r in text for r in KERNEL_REFUSALS)


def _flash_cpu(q, k, v, attn_mask, scale):
    """The fused CPU flash kernel: output (B, nh, T, hs) and row log-sum-exp (B, nh, T)."""
    bias = None if attn_mask is None else _bias(attn_mask, q.dtype)
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, attn_mask is None, attn_mask=bias, scale=scale
    )


def _sdpa(q, k, v, attn_mask, scale):
    if attn_mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=_bias(attn_mask, q.dtype), scale=scale)


def _allowed(attn_mask: torch.Tensor | None, T: int, device) -> torch.Tensor:
    causal = torch.ones(T, T, dtype=torch.bool, device=device).tril()
    if attn_mask is None:
        return causal
    if attn_mask.dtype != torch.bool:
        raise TypeError("policy_attention expects a boolean attn_mask (True = may attend)")
    return attn_mask & causal


def _bias(attn_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Bool mask -> additive bias (finfo.min where a query may not read a key)."""
    T = attn_mask.shape[-1]
    allowed = _allowed(attn_mask, T, attn_mask.device)
    bias = torch.zeros(allowed.shape, dtype=dtype, device=attn_mask.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)
