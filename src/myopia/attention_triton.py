"""Strict myopic attention on CUDA as Triton kernels: the causal forward and a dQ-only backward.

Strict myopia (horizon 0, ``detach="kv"``) has the forward of causal attention, but key and
value i reach the gradient only through query i (the diagonal pair); every other pair reads
constants. With c the score scale, for one head of q, k, v, O, dO (T, hs):

    S = c Q K^T (causal),   lse_i = log sum_j exp(S_ij),   P = exp(S - lse),   O = P V
    D_i  = dO_i . O_i                                         (= sum_j P_ij dO_i . v_j)
    dS   = P * (dO V^T - D)                                   (as in vanilla attention)
    dQ   = c dS K                                             (vanilla dQ: every pair)
    dv_i = P_ii dO_i,   dk_i = c dS_ii q_i = c P_ii (dO_i . v_i - D_i) q_i   (the diagonal only)

``dk_i`` equals ``c P_ii (dO_i . (v_i - O_i)) q_i`` of :mod:`myopia.attention`. A vanilla
flash backward also forms dK = c dS^T Q and dV = P^T dO over every pair; strict myopia
never needs them, so the backward here is one kernel over query blocks (the "dQ" kernel of
flash attention) that recomputes P from the saved row log-sum-exp, accumulates dQ over the
key blocks each query block reads, and takes P_ii and dS_ii from the diagonal tiles it
already has: three (T, T)-sized matrix products per head instead of five.

Forward: on CUDA, torch's fused kernel that vanilla attention runs in that dtype (flash in
float16/bfloat16, memory-efficient in float32) gives O and the row log-sum-exp, so the
forward costs what vanilla's does; where it declines the inputs, and under Triton's
interpreter, the flash-style Triton kernel here. Both return O in the input dtype and lse
in float32.

Shapes: q, k, v (B, nh, T, hs), any strides, one dtype of float32, bfloat16, float16;
hs in :data:`HEAD_DIMS`. Output and gradients have q's shape and dtype; every score,
softmax, P_ii, dS_ii and accumulator is float32, and in float32 the matrix products use
IEEE float32 (no TF32), so a float32 model gets float32 accuracy. Causal mask only: a
boolean attention mask (padding) or ``detach="hidden"`` (K', V' carry gradient, which needs
the full dK', dV') are served by :func:`myopia.attention.myopic_attention_by_correction`.

Tests: tests/test_attention_triton.py runs these kernels on CPU under Triton's interpreter
(``TRITON_INTERPRET=1``) against the float64 reference, and on CUDA (skipped without a GPU)
inside the built-in GPT and a Hugging Face model.
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # an optional dependency: pip install 'myopia[triton]'
    triton = None

HEAD_DIMS = (16, 32, 64, 128)  # powers of two: a Triton block's sizes must be
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# The interpreter runs kernels on CPU tensors (tests); it must be set before triton is imported.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
MAX_HEADS = 65535  # B * nh is the second axis of the launch grid, which CUDA limits to 65535


def unsupported(q: torch.Tensor) -> str | None:
    """Why these kernels cannot serve q (B, nh, T, hs), or None when they can."""
    if triton is None:
        return "triton is not installed (pip install 'myopia[triton]')"
    if q.device.type != "cuda" and not (INTERPRET and q.device.type == "cpu"):
        return f"the Triton kernels run on CUDA (or on CPU under TRITON_INTERPRET=1), not on {q.device.type}"
    if q.dtype not in DTYPES:
        return f"the Triton kernels take float32, bfloat16 or float16, not {q.dtype}"
    if q.dim() != 4 or q.shape[-1] not in HEAD_DIMS:
        return f"the Triton kernels take (B, nh, T, hs) with hs in {HEAD_DIMS}, got shape {tuple(q.shape)}"
    if q.shape[0] * q.shape[1] > MAX_HEADS:
        return f"the Triton kernels take at most {MAX_HEADS} sequences x heads, got {q.shape[0]} x {q.shape[1]}"
    return None


def serves(q: torch.Tensor, k_off: torch.Tensor, v_off: torch.Tensor, attn_mask: torch.Tensor | None) -> bool:
    """Is this the path for myopic attention on q? CUDA, strict myopia (k', v' constants),
    plain causal mask, a supported dtype and head size, triton importable."""
    return (
        q.device.type == "cuda"
        and attn_mask is None
        and not (k_off.requires_grad or v_off.requires_grad)
        and unsupported(q) is None
    )


def myopic_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, *, forward: str = "auto",
    blocks: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Strict myopic causal attention (module docstring): (B, nh, T, hs) in and out.

    k, v are the live keys/values; their values are also the constant past's (strict myopia),
    and they receive the diagonal gradient only. ``forward``: "auto" (on CUDA torch's fused
    kernel, else Triton), "triton" or "torch" (:func:`causal_forward`). Raises ValueError for inputs the
    kernels do not serve (:func:`unsupported`). ``blocks``: the kernels' tile sizes (default:
    autotuned on CUDA, a fixed choice under the interpreter)."""
    why = unsupported(q)
    if why is None and not (k.shape == v.shape == q.shape and k.dtype == v.dtype == q.dtype):
        why = f"q, k, v must share shape and dtype, got {tuple(q.shape)}/{tuple(k.shape)}/{tuple(v.shape)}"
    if why is not None:
        raise ValueError(why)
    if forward not in ("auto", "triton", "torch"):
        raise ValueError(f"unknown forward {forward!r}; use auto, triton or torch")
    return _MyopicTriton.apply(q, k, v, scale, forward, blocks)


class _MyopicTriton(torch.autograd.Function):
    """Saves what a flash backward saves (q, k, v, O, lse); the backward is one dQ kernel."""

    @staticmethod
    def forward(ctx, q, k, v, scale, forward, blocks):
        out, lse = causal_forward(q, k, v, scale, impl=forward, blocks=blocks)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale, ctx.blocks = scale, blocks
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = myopic_backward(q, k, v, out, lse, dout, ctx.scale, blocks=ctx.blocks)
        return dq, dk, dv, None, None, None


def causal_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, *, impl: str = "auto",
    blocks: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal attention O (B, nh, T, hs) in q's dtype and row log-sum-exp (B, nh, T) float32
    (a view, possibly of a padded tensor).

    impl "auto": on CUDA torch's fused kernel (flash for 16-bit, memory-efficient for
    float32: vanilla attention's own forward), falling back to Triton when it declines the
    inputs; "torch" insists on it; "triton" is the Triton kernel. ``blocks`` = (BLOCK_M,
    BLOCK_N) overrides the Triton tiles."""
    if impl != "triton" and q.device.type == "cuda":
        from myopia.attention import kernel_refused

        try:
            if q.dtype == torch.float32:
                out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(
                    q, k, v, None, True, 0.0, True, scale=scale
                )[:2]
            else:
                out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, True, False, scale=scale)[:2]
            return out, lse[..., : q.shape[-2]]  # the memory-efficient kernel pads lse's last dimension
        except RuntimeError as e:
            if impl == "torch" or not kernel_refused(e):
                raise
    elif impl == "torch":
        raise ValueError("forward='torch' needs CUDA tensors (torch's fused kernels)")
    B, H, T, hs = q.shape
    out = torch.empty(B, H, T, hs, dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, T, dtype=torch.float32, device=q.device)
    _launch(_forward_kernel, "forward", q, blocks, (q, k, v, out), (lse,), scale)
    return out, lse


def myopic_backward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor, dout: torch.Tensor,
    scale: float, *, blocks: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dQ (every pair) and the diagonal dK, dV of strict myopic attention, each (B, nh, T, hs)
    in q's dtype, from the forward's O and lse (module docstring)."""
    dq, dk, dv = (torch.empty(q.shape, dtype=q.dtype, device=q.device) for _ in range(3))
    lse = lse.contiguous()
    _launch(_dq_kernel, "backward", q, blocks, (q, k, v, out, dout, dq, dk, dv), (lse,), scale)
    return dq, dk, dv


# ------------------------------------------------------------------------------ launching
# (BLOCK_M, BLOCK_N, num_warps, num_stages) candidates per kernel and dot kind; on CUDA
# Triton's autotuner picks one per (T, hs, dtype) at the first call (not measured yet: no GPU
# was available where this was written); under the interpreter the first one runs. BLOCK_M
# is a multiple of BLOCK_N (the diagonal query block is split into whole key blocks).
# Float32 (IEEE products, no tensor cores) gets smaller tiles: compiled for sm_90, 128-row
# float32 tiles spill registers.
_CONFIGS = {
    ("forward", "16-bit"): [(64, 64, 4, 2), (128, 64, 4, 3), (128, 64, 8, 3), (128, 32, 4, 3), (64, 32, 4, 3)],
    ("backward", "16-bit"): [(64, 32, 4, 2), (64, 32, 8, 2), (128, 32, 8, 3), (64, 64, 4, 3), (64, 64, 8, 2),
                             (128, 64, 8, 2)],
    ("forward", "float32"): [(32, 32, 4, 2), (64, 32, 4, 2), (64, 32, 8, 2), (32, 16, 4, 2)],
    ("backward", "float32"): [(32, 32, 4, 2), (64, 32, 4, 2), (64, 32, 8, 2), (32, 16, 4, 2)],
}
_TUNED: dict = {}
# Fused multiply-add in the kernels' float32 arithmetic, stated (Triton 3.9 warns when a
# launch leaves it to its changing default).
_OPTIONS = {"enable_fp_fusion": True}


def _launch(kernel, name: str, q: torch.Tensor, blocks, tensors: tuple, rows: tuple, scale: float) -> None:
    """Run ``kernel`` over (query blocks, B * nh). tensors: (B, nh, T, hs) each passed with its
    four strides; rows: contiguous (B, nh, T) float32 tensors (lse)."""
    B, H, T, hs = q.shape
    args = [*tensors, *rows]
    for t in tensors:
        args.extend(t.stride())
    args.extend([H, T, float(scale)])
    # float32: IEEE products (no TF32). Triton 3.9's interpreter multiplies bfloat16 operands
    # as their integer bit patterns, so there they go to float32 first: the same products
    # (bf16 x bf16 is exact in float32) with the same float32 accumulation as the GPU's.
    dot = "ieee" if q.dtype == torch.float32 else "upcast" if INTERPRET and q.dtype == torch.bfloat16 else "native"
    tiles = (name, "float32" if q.dtype == torch.float32 else "16-bit")
    configs = _CONFIGS[tiles]
    if blocks is not None or INTERPRET:
        bm, bn, warps, stages = (*blocks, 4, 2) if blocks is not None else configs[0]
        kernel[(triton.cdiv(T, bm), B * H)](
            *args, HEAD_DIM=hs, BLOCK_M=bm, BLOCK_N=bn, DOT=dot, num_warps=warps, num_stages=stages, **_OPTIONS
        )
        return
    tuned = _TUNED.get(tiles)
    if tuned is None:
        candidates = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
                      for bm, bn, w, s in configs]
        # tuned once per (T, hs, dot); the autotuner adds the tensors' dtypes to the key itself
        tuned = _TUNED[tiles] = triton.autotune(candidates, key=["T", "HEAD_DIM", "DOT"])(kernel)
    tuned[lambda meta: (triton.cdiv(T, meta["BLOCK_M"]), B * H)](*args, HEAD_DIM=hs, DOT=dot, **_OPTIONS)


if triton is not None:

    @triton.jit
    def _dot(a, b, DOT: tl.constexpr):
        """a @ b accumulated in float32; DOT: "ieee" (float32 inputs), "native" (16-bit
        tensor cores) or "upcast" (bfloat16 under the interpreter, see :func:`_launch`)."""
        if DOT == "upcast":
            c = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
        elif DOT == "ieee":
            c = tl.dot(a, b, input_precision="ieee")
        else:
            c = tl.dot(a, b)
        return c

    @triton.jit
    def _query_block(H, T, BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr):
        """This program's query block: its first row, batch*head index bh = b * H + h (b, h
        as int64: B * nh * T * hs may pass 2^31), row and head-dim offsets, rows < T. The
        last query blocks (the most key tiles, causally) are launched first, so no long
        block starts last and runs alone."""
        start_m = (tl.num_programs(0) - 1 - tl.program_id(0)) * BLOCK_M
        bh = tl.program_id(1)
        offs_m = start_m + tl.arange(0, BLOCK_M)
        return (start_m, bh, (bh // H).to(tl.int64), (bh % H).to(tl.int64), offs_m, tl.arange(0, HEAD_DIM),
                offs_m < T)

    @triton.jit
    def _forward_tile(acc, m_i, l_i, q, k_base, v_base, skt, skd, svt, svd, start_n, offs_m, offs_d, T, qk_scale,
                      BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, DOT: tl.constexpr):
        """One key block of the online softmax; scores in base 2 (qk_scale = c log2 e)."""
        offs_n = start_n + tl.arange(0, BLOCK_N)
        key_ok = offs_n < T
        kt = tl.load(k_base + offs_n[None, :] * skt + offs_d[:, None] * skd, mask=key_ok[None, :], other=0.0)
        s = _dot(q, kt, DOT) * qk_scale  # (BLOCK_M, BLOCK_N) float32
        if CAUSAL:
            s = tl.where(offs_m[:, None] >= offs_n[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        v = tl.load(v_base + offs_n[:, None] * svt + offs_d[None, :] * svd, mask=key_ok[:, None], other=0.0)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, DOT)
        return acc, m_new, l_i * alpha + tl.sum(p, 1)

    @triton.jit
    def _forward_kernel(Q, K, V, O, LSE,
                        sqb, sqh, sqt, sqd, skb, skh, skt, skd, svb, svh, svt, svd, sob, soh, sot, sod,
                        H, T, scale,
                        HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                        DOT: tl.constexpr):
        """O and lse of one (query block, batch*head): keys below the block in full tiles,
        then the diagonal block's key tiles with the causal mask."""
        start_m, bh, b, h, offs_m, offs_d, row_ok = _query_block(H, T, BLOCK_M, HEAD_DIM)
        q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqt + offs_d[None, :] * sqd,
                    mask=row_ok[:, None], other=0.0)
        k_base = K + b * skb + h * skh
        v_base = V + b * svb + h * svh
        qk_scale = scale * 1.4426950408889634  # log2 e: exp2 instead of exp
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
        for start_n in range(0, start_m, BLOCK_N):
            acc, m_i, l_i = _forward_tile(acc, m_i, l_i, q, k_base, v_base, skt, skd, svt, svd, start_n, offs_m, offs_d,
                                          T, qk_scale, BLOCK_N, False, DOT)
        for start_n in range(start_m, start_m + BLOCK_M, BLOCK_N):
            acc, m_i, l_i = _forward_tile(acc, m_i, l_i, q, k_base, v_base, skt, skd, svt, svd, start_n, offs_m, offs_d,
                                          T, qk_scale, BLOCK_N, True, DOT)
        acc = acc / l_i[:, None]
        tl.store(O + b * sob + h * soh + offs_m[:, None] * sot + offs_d[None, :] * sod,
                 acc.to(O.dtype.element_ty), mask=row_ok[:, None])
        tl.store(LSE + bh.to(tl.int64) * T + offs_m, (m_i + tl.math.log2(l_i)) * 0.6931471805599453, mask=row_ok)

    @triton.jit
    def _dq_tile(dq, q, do, lse2, delta, k_base, v_base, skt, skd, svt, svd, start_n, offs_m, offs_d, T, qk_scale,
                 BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, DOT: tl.constexpr):
        """dQ += dS K over one key block; also returns P and dS there (the diagonal is read
        from them in the causal tiles). Keys below the query block are all < T: no mask."""
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_ptrs = k_base + offs_n[:, None] * skt + offs_d[None, :] * skd  # (BLOCK_N, HEAD_DIM)
        v_ptrs = v_base + offs_n[:, None] * svt + offs_d[None, :] * svd
        if CAUSAL:
            k = tl.load(k_ptrs, mask=(offs_n < T)[:, None], other=0.0)
            v = tl.load(v_ptrs, mask=(offs_n < T)[:, None], other=0.0)
        else:
            k = tl.load(k_ptrs)
            v = tl.load(v_ptrs)
        p = tl.math.exp2(_dot(q, tl.trans(k), DOT) * qk_scale - lse2[:, None])  # (BLOCK_M, BLOCK_N)
        if CAUSAL:
            p = tl.where(offs_m[:, None] >= offs_n[None, :], p, 0.0)
        ds = p * (_dot(do, tl.trans(v), DOT) - delta[:, None])
        dq += _dot(ds.to(k.dtype), k, DOT)
        return dq, p, ds

    @triton.jit
    def _dq_kernel(Q, K, V, O, DO, DQ, DK, DV, LSE,
                   sqb, sqh, sqt, sqd, skb, skh, skt, skd, svb, svh, svt, svd, sob, soh, sot, sod,
                   sdob, sdoh, sdot, sdod, sdqb, sdqh, sdqt, sdqd, sdkb, sdkh, sdkt, sdkd, sdvb, sdvh, sdvt, sdvd,
                   H, T, scale,
                   HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   DOT: tl.constexpr):
        """dQ, and the diagonal dk, dv, of one (query block, batch*head)."""
        start_m, bh, b, h, offs_m, offs_d, row_ok = _query_block(H, T, BLOCK_M, HEAD_DIM)
        rows = offs_m[:, None]
        cols = offs_d[None, :]
        q = tl.load(Q + b * sqb + h * sqh + rows * sqt + cols * sqd, mask=row_ok[:, None], other=0.0)
        do = tl.load(DO + b * sdob + h * sdoh + rows * sdot + cols * sdod, mask=row_ok[:, None], other=0.0)
        o = tl.load(O + b * sob + h * soh + rows * sot + cols * sod, mask=row_ok[:, None], other=0.0)
        delta = tl.sum(do.to(tl.float32) * o.to(tl.float32), 1)  # D_i = dO_i . O_i
        lse2 = tl.load(LSE + bh.to(tl.int64) * T + offs_m, mask=row_ok, other=0.0) * 1.4426950408889634  # base 2
        k_base = K + b * skb + h * skh
        v_base = V + b * svb + h * svh
        qk_scale = scale * 1.4426950408889634
        dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
        for start_n in range(0, start_m, BLOCK_N):
            dq, p, ds = _dq_tile(dq, q, do, lse2, delta, k_base, v_base, skt, skd, svt, svd, start_n, offs_m, offs_d,
                                 T, qk_scale, BLOCK_N, False, DOT)
        p_diag = tl.zeros([BLOCK_M], tl.float32)
        ds_diag = tl.zeros([BLOCK_M], tl.float32)
        for start_n in range(start_m, start_m + BLOCK_M, BLOCK_N):
            dq, p, ds = _dq_tile(dq, q, do, lse2, delta, k_base, v_base, skt, skd, svt, svd, start_n, offs_m, offs_d,
                                 T, qk_scale, BLOCK_N, True, DOT)
            diag = offs_m[:, None] == (start_n + tl.arange(0, BLOCK_N))[None, :]
            p_diag += tl.sum(tl.where(diag, p, 0.0), 1)
            ds_diag += tl.sum(tl.where(diag, ds, 0.0), 1)
        tl.store(DQ + b * sdqb + h * sdqh + rows * sdqt + cols * sdqd, (dq * scale).to(DQ.dtype.element_ty),
                 mask=row_ok[:, None])
        dv = p_diag[:, None] * do.to(tl.float32)  # dv_i = P_ii dO_i
        dk = (ds_diag * scale)[:, None] * q.to(tl.float32)  # dk_i = c dS_ii q_i
        tl.store(DV + b * sdvb + h * sdvh + rows * sdvt + cols * sdvd, dv.to(DV.dtype.element_ty), mask=row_ok[:, None])
        tl.store(DK + b * sdkb + h * sdkh + rows * sdkt + cols * sdkd, dk.to(DK.dtype.element_ty), mask=row_ok[:, None])
