"""Brute-force definitions of the gradient policies, written independently of myopia.

Two oracles for the built-in GPT's architecture (pre-LN GPT-2, learned positions):

* ``per_position_jacobian`` gives every position t its own copy theta_t of every
  parameter (the computation at position t uses theta_t in every layer) and does one
  backward per loss position j. It returns M[j][i] = dL_j/dtheta_i for all pairs, from
  which vanilla (sum of all), myopic G(0) (diagonal) and block horizons (same-block
  pairs) follow by definition.
* ``loop_gradient`` recomputes attention one query at a time with Python loops; for query
  j the key/value of position i is either live or a constant, exactly as the policy's
  definition says ("kv": the key/value tensors are constants; "hidden": the attention
  input is a constant and keys/values are recomputed with the live projections). It
  serves band horizons (per attention hop) and the hidden variant.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _ln(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


# ---------------------------------------------------------------- per-position copies
def _lin_pp(x, W, b):
    """x (B, T, in), W (T, out, in), b (T, out): position t uses W[t], b[t]."""
    return torch.einsum("bti,toi->bto", x, W) + b


def _ln_pp(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b  # w, b: (T, C) broadcast over batch


def per_position_forward(P: dict, x: torch.Tensor, cfg) -> torch.Tensor:
    """Forward of the GPT where every parameter in P has a leading dim T (one copy per position)."""
    B, T = x.shape[:2]
    C, nh = cfg.n_embd, cfg.n_head
    hs = C // nh
    ar = torch.arange(T)
    if cfg.n_in:
        h = _lin_pp(x, P["transformer.wte.weight"], P["transformer.wte.bias"])
    else:
        h = P["transformer.wte.weight"][ar.unsqueeze(0).expand(B, T), x]  # table of copy t at position t
    h = h + P["transformer.wpe.weight"][ar, ar]  # copy t, row t
    for layer in range(cfg.n_layer):
        p = f"transformer.h.{layer}."
        a = _ln_pp(h, P[p + "ln_1.weight"], P[p + "ln_1.bias"])
        qkv = _lin_pp(a, P[p + "attn.c_attn.weight"], P[p + "attn.c_attn.bias"])
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
        s = q @ k.transpose(-2, -1) / math.sqrt(hs)
        s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        y = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, C)
        h = h + _lin_pp(y, P[p + "attn.c_proj.weight"], P[p + "attn.c_proj.bias"])
        m = _ln_pp(h, P[p + "ln_2.weight"], P[p + "ln_2.bias"])
        m = _gelu(_lin_pp(m, P[p + "mlp.c_fc.weight"], P[p + "mlp.c_fc.bias"]))
        h = h + _lin_pp(m, P[p + "mlp.c_proj.weight"], P[p + "mlp.c_proj.bias"])
    h = _ln_pp(h, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"])
    W = P["lm_head.weight"]
    b = P.get("lm_head.bias")
    out = torch.einsum("bti,toi->bto", h, W)
    return out if b is None else out + b


def per_position_jacobian(model, x, per_position_loss) -> dict[str, torch.Tensor]:
    """name -> tensor (T_loss j, T_pos i, *param.shape) with dL_j/dtheta_i, where
    L_j = per_position_loss(out)[:, j].sum() / (B * T) (so that sum_j L_j is the mean loss)."""
    B, T = x.shape[:2]
    P = {n: p.detach().unsqueeze(0).repeat(T, *([1] * p.dim())).requires_grad_(True) for n, p in model.named_parameters()}
    out = per_position_forward(P, x, model.config)
    L = per_position_loss(out)  # (B, T)
    names = list(P)
    M = {n: torch.zeros(T, *P[n].shape, dtype=P[n].dtype) for n in names}
    for j in range(T):
        grads = torch.autograd.grad(L[:, j].sum() / (B * T), [P[n] for n in names], retain_graph=True, allow_unused=True)
        for n, g in zip(names, grads):
            if g is not None:
                M[n][j] = g
    return M


def combine(M: dict[str, torch.Tensor], keep) -> dict[str, torch.Tensor]:
    """Sum dL_j/dtheta_i over the (j, i) pairs where keep(j, i) is true."""
    out = {}
    for n, m in M.items():
        T = m.shape[0]
        mask = torch.tensor([[bool(keep(j, i)) for i in range(T)] for j in range(T)], dtype=m.dtype)
        out[n] = torch.einsum("ji,ji...->...", mask, m)
    return out


# ---------------------------------------------------------------- per-query loops
def loop_forward(model, x, live, detach: str):
    """Forward of the GPT with attention computed query by query.

    live(j, i) -> bool says whether query j reads the live key/value of position i."""
    cfg = model.config
    B, T = x.shape[:2]
    C, nh = cfg.n_embd, cfg.n_head
    hs = C // nh
    prm = dict(model.named_parameters())
    if cfg.n_in:
        h = F.linear(x, prm["transformer.wte.weight"], prm["transformer.wte.bias"])
    else:
        h = prm["transformer.wte.weight"][x]
    h = h + prm["transformer.wpe.weight"][:T]
    for layer in range(cfg.n_layer):
        p = f"transformer.h.{layer}."
        a = _ln(h, prm[p + "ln_1.weight"], prm[p + "ln_1.bias"])
        W, bias = prm[p + "attn.c_attn.weight"], prm[p + "attn.c_attn.bias"]
        q, k, v = F.linear(a, W, bias).split(C, dim=2)
        if detach == "kv":
            k_c, v_c = k.detach(), v.detach()
        else:
            k_c, v_c = F.linear(a.detach(), W, bias)[..., C:].split(C, dim=2)
        rows = []
        for j in range(T):
            heads = []
            for hd in range(nh):
                sl = slice(hd * hs, (hd + 1) * hs)
                keys = torch.stack([(k if live(j, i) else k_c)[:, i, sl] for i in range(j + 1)], 1)  # (B, j+1, hs)
                vals = torch.stack([(v if live(j, i) else v_c)[:, i, sl] for i in range(j + 1)], 1)
                w = torch.softmax((keys @ q[:, j, sl].unsqueeze(-1)).squeeze(-1) / math.sqrt(hs), -1)  # (B, j+1)
                heads.append((w.unsqueeze(-1) * vals).sum(1))
            rows.append(torch.cat(heads, -1))
        y = torch.stack(rows, 1)  # (B, T, C)
        h = h + F.linear(y, prm[p + "attn.c_proj.weight"], prm[p + "attn.c_proj.bias"])
        m = _ln(h, prm[p + "ln_2.weight"], prm[p + "ln_2.bias"])
        m = _gelu(F.linear(m, prm[p + "mlp.c_fc.weight"], prm[p + "mlp.c_fc.bias"]))
        h = h + F.linear(m, prm[p + "mlp.c_proj.weight"], prm[p + "mlp.c_proj.bias"])
    h = _ln(h, prm["transformer.ln_f.weight"], prm["transformer.ln_f.bias"])
    return F.linear(h, prm["lm_head.weight"], prm.get("lm_head.bias"))


def loop_gradient(model, x, per_position_loss, live, detach: str) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss = per_position_loss(loop_forward(model, x, live, detach)).mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return grads
