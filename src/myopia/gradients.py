"""Where the gradient comes from: the offset decomposition G(tau).

Give every position i its own copy theta_i of the parameters. The offset gradient

    G(tau) = sum_i dL_{i+tau} / dtheta_i

is what the computation at position i receives from the loss tau tokens later, through
all paths (every layer, every chain of attention hops). sum_tau G(tau) is the ordinary
gradient. L_j is the batch-summed loss at position j divided by B*T, so sum_j L_j is the
mean training loss and every number here is a part of the gradient training uses.

Two exact computations:

* **Split** (:func:`gradient_split`), two forward + backward passes: G(0) is the myopic
  gradient (every attention layer treats past keys/values as constants,
  ``GradientPolicy(horizon=0, detach="kv")``), and the future part sum_{tau>=1} G(tau) is
  vanilla - myopic.
* **Profile** (:func:`offset_profile`), one forward and one backward per loss position j.
  Module hooks split each dL_j/dtheta by the position i whose computation used theta: a
  forward hook keeps the module's input X (B, T, in), a tensor hook on its output receives
  dY (B, T, out), and position i contributes dY_i^T X_i (summed over the batch) to the
  weight gradient; that contribution is added to bin tau = j - i. Bins tau = 0..K are
  explicit; the last bin (tau > K) is the rest of dL_j/dtheta, so the bins add up to the
  gradient autograd computes. Covered modules: ``nn.Linear``, ``nn.Embedding``,
  ``nn.LayerNorm``, RMSNorm and Hugging Face's ``Conv1D``; any other module that owns a
  trainable parameter is an error (freeze it or skip the profile).

Sampled loss positions. For long sequences the profile uses a seeded sample J of S of the
T loss positions (uniform, without replacement) and the Horvitz-Thompson estimator

    G_hat(tau) = (T / S) sum_{j in J} g_j(tau),    g_j(tau) = dL_j / dtheta_{j - tau},

which is unbiased. Its variance is Var = T^2 (1 - S/T) sigma^2 / S, with sigma^2 the
variance of g_j(tau) over the T positions, estimated by the sample variance over J. Every
linear summary (the share of the vanilla gradient, below) is therefore unbiased, with the
standard error reported next to it; the squared norm ||G_hat||^2 is biased upwards by
tr(Var), so an unbiased version ||G_hat||^2 - tr(Var_hat) is reported too. With S = T
everything is exact and the variance is zero.

Summaries, per parameter group (embeddings; per layer W_Q, W_K, W_V, W_O, MLP, norms;
head = final norm + output layer) and for all parameters:

* squared norms of G(0), of the future part F and of the vanilla gradient V;
* share of the total: <G, V> / ||V||^2 for G = G(0), F or G(tau). Shares add up to 1
  exactly (a signed decomposition of V along itself);
* the norm share ||F||^2 / (||G(0)||^2 + ||F||^2) and the cosine between G(0) and F.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from myopia.policy import MYOPIC, VANILLA
from myopia.train import ForwardFn, default_forward

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (out, y) -> (B, T) per-position loss

GROUP_KINDS = ("embeddings", "W_Q", "W_K", "W_V", "W_QKV", "W_O", "MLP", "norms", "other", "head")


# ------------------------------------------------------------------------ parameter groups
@dataclass(frozen=True)
class GroupPart:
    """Rows/columns [start, stop) along ``dim`` of parameter ``name`` belong to ``group``."""

    group: str
    name: str
    dim: int = 0
    start: int = 0
    stop: int | None = None  # None: the whole parameter

    def view(self, t: torch.Tensor) -> torch.Tensor:
        if self.stop is None:
            return t
        return t.narrow(self.dim, self.start, self.stop - self.start)


_LAYER = re.compile(r"(?:^|\.)(?:h|layers|layer|blocks)\.(\d+)\.")


def parameter_groups(model: nn.Module) -> list[GroupPart]:
    """Assign every trainable parameter (or slice of a fused one) to a group.

    Groups are named ``embeddings``, ``head`` and ``h{layer}.{kind}`` with kind one of
    W_Q, W_K, W_V, W_O, MLP, norms (``W_QKV`` for a fused projection whose rows are
    interleaved per head, ``other`` for anything unrecognised). Names follow the built-in
    GPT (GPT-2 names) and the common Hugging Face layouts.
    """
    parts: list[GroupPart] = []
    seen: set[int] = set()
    for mname, m in model.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            name = f"{mname}.{pname}" if mname else pname
            parts.extend(_group_param(name, mname, m, p))
    return parts


def _group_param(name: str, mname: str, m: nn.Module, p: nn.Parameter) -> list[GroupPart]:
    low = mname.lower()
    last = low.rsplit(".", 1)[-1]
    layer = _LAYER.search("." + name)
    if layer is None:
        if any(s in low for s in ("wte", "wpe", "embed_tokens", "embed_in", "word_embeddings", "position_embeddings", "embed_positions")):
            return [GroupPart("embeddings", name)]
        return [GroupPart("head" if any(s in low for s in ("lm_head", "embed_out", "ln_f", "norm", "head")) else "other", name)]
    prefix = f"h{layer.group(1)}."
    if last in ("c_attn", "qkv_proj", "wqkv", "in_proj"):
        conv1d = type(m).__name__ == "Conv1D"
        dim = 1 if conv1d and p.dim() == 2 else 0
        n = p.shape[dim]
        if n % 3:
            return [GroupPart(prefix + "W_QKV", name)]
        c = n // 3
        return [GroupPart(prefix + kind, name, dim, i * c, (i + 1) * c) for i, kind in enumerate(("W_Q", "W_K", "W_V"))]
    if last in ("query_key_value",):
        return [GroupPart(prefix + "W_QKV", name)]
    if last in ("q_proj", "query", "wq", "q"):
        return [GroupPart(prefix + "W_Q", name)]
    if last in ("k_proj", "key", "wk", "k"):
        return [GroupPart(prefix + "W_K", name)]
    if last in ("v_proj", "value", "wv", "v"):
        return [GroupPart(prefix + "W_V", name)]
    if last in ("o_proj", "out_proj", "wo", "dense") and ("attn" in low or "attention" in low):
        return [GroupPart(prefix + "W_O", name)]
    if last == "c_proj" and ".attn" in "." + low:
        return [GroupPart(prefix + "W_O", name)]
    if "mlp" in low or "feed_forward" in low or last in ("c_fc", "fc1", "fc2", "gate_proj", "up_proj", "down_proj"):
        return [GroupPart(prefix + "MLP", name)]
    if "norm" in low or last.startswith("ln"):
        return [GroupPart(prefix + "norms", name)]
    return [GroupPart(prefix + "other", name)]


def group_kind(group: str) -> str:
    """``h3.W_K`` -> ``W_K``; ``embeddings`` -> ``embeddings``."""
    return group.split(".", 1)[1] if re.match(r"h\d+\.", group) else group


def _order_key(group: str):
    m = re.match(r"h(\d+)\.(.*)", group)
    kind = group_kind(group)
    rank = GROUP_KINDS.index(kind) if kind in GROUP_KINDS else len(GROUP_KINDS)
    if group == "embeddings":
        return (-1, 0)
    if group == "head":
        return (10**9, 0)
    return (int(m.group(1)), rank) if m else (10**9 - 1, rank)


def _flat(grads: dict[str, torch.Tensor], parts: list[GroupPart]) -> torch.Tensor:
    return torch.cat([p.view(grads[p.name]).reshape(-1) for p in parts])


def _collect(parts: list[GroupPart]) -> dict[str, list[GroupPart]]:
    """group -> its parts, plus per-kind unions over layers (``all:W_K``), ``all:W_K+W_V``
    and ``total`` (every parameter)."""
    by_group: dict[str, list[GroupPart]] = {}
    for p in parts:
        by_group.setdefault(p.group, []).append(p)
    out = {g: by_group[g] for g in sorted(by_group, key=_order_key)}
    kinds: dict[str, list[GroupPart]] = {}
    for g, ps in out.items():
        if re.match(r"h\d+\.", g):
            kinds.setdefault(group_kind(g), []).extend(ps)
    for k in sorted(kinds, key=lambda k: GROUP_KINDS.index(k) if k in GROUP_KINDS else 99):
        out["all:" + k] = kinds[k]
    if "W_K" in kinds and "W_V" in kinds:
        out["all:W_K+W_V"] = kinds["W_K"] + kinds["W_V"]
    out["total"] = list(parts)
    return out


# ------------------------------------------------------------------------ the split
@dataclass
class GradientSplit:
    """Per-parameter gradients of the mean loss: vanilla V, myopic G(0); future = V - G(0)."""

    vanilla: dict[str, torch.Tensor]
    myopic: dict[str, torch.Tensor]

    @property
    def future(self) -> dict[str, torch.Tensor]:
        return {n: self.vanilla[n] - self.myopic[n] for n in self.vanilla}


def _trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters to decompose; set requires_grad=True on some")
    return named


def _grad(loss: torch.Tensor, named, retain_graph: bool = False) -> dict[str, torch.Tensor]:
    grads = torch.autograd.grad(loss, [p for _, p in named], retain_graph=retain_graph, allow_unused=True)
    return {n: torch.zeros_like(p) if g is None else g for (n, p), g in zip(named, grads)}


def _check_batch(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        x, y = batch
    except (TypeError, ValueError):
        raise ValueError("batch must be a pair (x, y) of inputs and targets") from None
    if x.dim() < 2 or x.shape[1] < 1:
        raise ValueError(f"inputs must be (B, T) token ids or (B, T, n_in) vectors, got shape {tuple(x.shape)}")
    return x, y


def gradient_split(
    model: nn.Module, batch, loss_fn: LossFn, *, forward_fn: ForwardFn = default_forward
) -> GradientSplit:
    """Vanilla and myopic (G(0)) gradients of the mean loss: two forward + backward passes.

    ``loss_fn(out, y)`` returns the (B, T) per-position loss; ``forward_fn(model, x, policy)``
    runs the model under a gradient policy (default ``model(x, policy=policy)``).
    """
    x, y = _check_batch(model, batch)
    named = _trainable(model)
    van = _grad(loss_fn(forward_fn(model, x, VANILLA), y).mean(), named)
    myo = _grad(loss_fn(forward_fn(model, x, MYOPIC), y).mean(), named)  # MYOPIC: horizon=0, detach="kv"
    return GradientSplit(vanilla=van, myopic=myo)


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a.double(), b.double()))


def split_summary(v: torch.Tensor, g0: torch.Tensor) -> dict:
    """Norms, shares and cosine of one group's vanilla gradient v = g0 + f."""
    f = v - g0
    vv, gg, ff = _dot(v, v), _dot(g0, g0), _dot(f, f)
    nan = float("nan")
    return {
        "n_params": int(v.numel()),
        "vanilla_sq_norm": vv,
        "myopic_sq_norm": gg,
        "future_sq_norm": ff,
        "myopic_share": _dot(g0, v) / vv if vv > 0 else nan,  # myopic_share + future_share = 1
        "future_share": _dot(f, v) / vv if vv > 0 else nan,
        "future_norm_share": ff / (gg + ff) if gg + ff > 0 else nan,
        "future_to_myopic_norm": math.sqrt(ff / gg) if gg > 0 else nan,
        "cos_myopic_future": _dot(g0, f) / math.sqrt(gg * ff) if gg > 0 and ff > 0 else nan,
    }


def summarize_split(split: GradientSplit, parts: list[GroupPart] | None = None, model: nn.Module | None = None) -> dict:
    """group -> :func:`split_summary` for every group, per-kind union and the total."""
    if parts is None:
        if model is None:
            raise ValueError("summarize_split needs parameter groups or the model")
        parts = parameter_groups(model)
    return {g: split_summary(_flat(split.vanilla, ps), _flat(split.myopic, ps)) for g, ps in _collect(parts).items()}


# ------------------------------------------------------------------------ the profile
def _module_kind(m: nn.Module) -> str | None:
    if isinstance(m, nn.Linear):
        return "linear"
    if type(m).__name__ == "Conv1D" and hasattr(m, "nf"):  # Hugging Face GPT-2: y = x @ W + b, W (in, out)
        return "conv1d"
    if isinstance(m, nn.Embedding):
        return "embedding"
    if isinstance(m, nn.LayerNorm):
        return "layernorm"
    if isinstance(m, getattr(nn, "RMSNorm", ())) or (
        type(m).__name__.endswith("RMSNorm") and hasattr(m, "weight") and set(dict(m.named_parameters(recurse=False))) == {"weight"}
    ):
        return "rmsnorm"
    return None


SUPPORTED_MODULES = "nn.Linear, nn.Embedding, nn.LayerNorm, RMSNorm, Conv1D"


def _pos_axis(ndim: int) -> int:
    """Position axis of a module output: (T, C) -> 0, (B, T, ...) -> 1."""
    return 0 if ndim <= 2 else 1


class _PositionCapture:
    """Hooks that split each backward's weight gradients by the position that used them.

    ``cur[name]`` is (K + 2, *param.shape): for the loss position ``j`` being
    differentiated, row b accumulates the part of dL_j/dtheta that comes from position
    i = j - b (b = 0..K; the last row is filled in by the caller). ``full`` (when set)
    accumulates the sum over every i <= j, to check that the hooks see all of the gradient.
    """

    def __init__(self, model: nn.Module, names: dict[int, str], T: int, K: int):
        self.T, self.K = T, K
        self.j: int | None = None
        self.cur: dict[str, torch.Tensor] = {}
        self.full: dict[str, torch.Tensor] | None = None
        self.handles = []
        self.names = names
        for mname, m in model.named_modules():
            own = [(pn, p) for pn, p in m.named_parameters(recurse=False) if p.requires_grad]
            if not own:
                continue
            kind = _module_kind(m)
            label = mname or type(model).__name__
            if kind is None:
                raise ValueError(
                    f"offset profile: parameter {label}.{own[0][0]} belongs to a {type(m).__name__} module, which the "
                    f"per-position split does not cover (covered: {SUPPORTED_MODULES}); freeze it (requires_grad=False) "
                    f"or compute only the myopic/future split (profile=False, or --no-profile)"
                )
            if kind == "embedding" and (m.scale_grad_by_freq or m.sparse):
                raise ValueError(f"offset profile: embedding {label} uses scale_grad_by_freq/sparse gradients; turn them off")
            if kind == "layernorm" and len(m.normalized_shape) != 1:
                raise ValueError(f"offset profile: LayerNorm {label} normalises over {len(m.normalized_shape)} dims; only 1 is covered")
            self.handles.append(m.register_forward_hook(self._forward_hook(m, kind, label)))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _forward_hook(self, m: nn.Module, kind: str, label: str):
        T = self.T

        def hook(mod, inputs, output):
            if not torch.is_tensor(output) or not output.requires_grad:
                return None
            ax = _pos_axis(output.dim())
            if output.shape[ax] != T:
                raise ValueError(
                    f"offset profile: module {label} was called on a tensor of shape {tuple(output.shape)} whose position "
                    f"axis is not the sequence length {T}; the split needs (T, ...) or (B, T, ...) activations"
                )
            inp = inputs[0].detach()
            if kind == "embedding":
                saved = inp.movedim(ax, 0).reshape(T, -1)  # (T, N) token ids
            elif kind in ("linear", "conv1d"):
                saved = inp.movedim(ax, 0).reshape(T, -1, inp.shape[-1])  # (T, N, in)
            elif kind == "layernorm":
                xhat = F.layer_norm(inp, m.normalized_shape, None, None, m.eps)
                saved = xhat.movedim(ax, 0).reshape(T, -1, inp.shape[-1])  # (T, N, C)
            else:  # rmsnorm
                eps = getattr(m, "eps", None) or getattr(m, "variance_epsilon", None) or torch.finfo(inp.dtype).eps
                # torch's RMSNorm works in the input dtype; the HF ones normalise in float32 and cast back
                xf = inp if isinstance(m, getattr(nn, "RMSNorm", ())) else inp.float()
                xhat = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(inp.dtype)
                saved = xhat.movedim(ax, 0).reshape(T, -1, inp.shape[-1])
            params = {pn: self.names[id(p)] for pn, p in m.named_parameters(recurse=False) if p.requires_grad}
            output.register_hook(lambda g: self._backward(m, kind, saved, params, g, ax))
            return None

        return hook

    def _backward(self, m, kind: str, saved: torch.Tensor, params: dict[str, str], g: torch.Tensor, ax: int) -> None:
        j = self.j
        if j is None:
            return
        gm = g.detach().movedim(ax, 0)  # (T, ..., out)
        gm = gm.reshape(self.T, -1, gm.shape[-1])  # (T, N, out)
        n = min(self.K, j) + 1
        idx = torch.arange(j, j - n, -1, device=g.device)  # positions i = j - b, b = 0..n-1
        _add_by_position(kind, m, saved[idx], gm[idx], params, {q: self.cur[q][:n] for q in params.values()})
        if self.full is not None:
            _add_summed(kind, m, saved[: j + 1], gm[: j + 1], params, self.full)


def _add_by_position(kind, m, saved, dy, params, dest) -> None:
    """dest[param][b] += contribution of the b-th selected position; saved/dy (n, N, ...)."""
    w, bias = params.get("weight"), params.get("bias")
    if kind == "embedding":
        if w is not None:
            n, V = saved.shape[0], dest[w].shape[1]
            rows = (saved + V * torch.arange(n, device=saved.device).unsqueeze(1)).reshape(-1)  # row b*V + id
            flat = dest[w].view(n * V, -1)
            flat.index_add_(0, rows, dy.reshape(-1, dy.shape[-1]).to(flat.dtype))
            if m.padding_idx is not None:
                dest[w][:, m.padding_idx] = 0
        return
    if w is not None:
        if kind == "linear":
            dest[w] += torch.einsum("nbo,nbi->noi", dy, saved)
        elif kind == "conv1d":
            dest[w] += torch.einsum("nbo,nbi->nio", dy, saved)
        else:  # layernorm / rmsnorm: y = xhat * w (+ b)
            dest[w] += (dy * saved).sum(1)
    if bias is not None:
        dest[bias] += dy.sum(1)


def _add_summed(kind, m, saved, dy, params, dest) -> None:
    """dest[param] += contribution of all the given positions together; saved/dy (n, N, ...)."""
    w, bias = params.get("weight"), params.get("bias")
    if kind == "embedding":
        if w is not None:
            dest[w].index_add_(0, saved.reshape(-1), dy.reshape(-1, dy.shape[-1]).to(dest[w].dtype))
            if m.padding_idx is not None:
                dest[w][m.padding_idx] = 0
        return
    if w is not None:
        if kind == "linear":
            dest[w] += torch.einsum("nbo,nbi->oi", dy, saved)
        elif kind == "conv1d":
            dest[w] += torch.einsum("nbo,nbi->io", dy, saved)
        else:
            dest[w] += (dy * saved).sum((0, 1))
    if bias is not None:
        dest[bias] += dy.sum((0, 1))


@dataclass
class OffsetProfile:
    """Estimates of G(tau) per parameter, tau = 0..K and a last bin for tau > K.

    ``bins[b][name]`` is G_hat(b) for b <= K and the tau > K remainder for b = K + 1.
    ``position_stats`` holds, per group, the per-position sums the variance needs.
    """

    seq_len: int
    max_offset: int
    positions: list[int]
    bins: list[dict[str, torch.Tensor]]
    scale: float  # T / S
    sq_norm_sum: dict[str, list[float]] = field(default_factory=dict)  # group -> per bin sum_j ||g_j||^2
    proj: dict[str, list[list[float]]] = field(default_factory=dict)  # group -> per bin [<g_j, V> for j]

    @property
    def sampled(self) -> bool:
        return len(self.positions) < self.seq_len


def sample_positions(T: int, positions: int | Sequence[int] | None, seed: int = 0) -> list[int]:
    """All T loss positions (None or 0), a seeded uniform sample of S of them, or an explicit list."""
    if positions is None or (isinstance(positions, int) and positions == 0):
        return list(range(T))
    if isinstance(positions, int):
        if positions < 0:
            raise ValueError(f"the number of sampled loss positions must be >= 1 (0 = all), got {positions}")
        if positions > T:
            raise ValueError(
                f"cannot sample {positions} loss positions from a sequence of {T}; use at most {T} (or 0 for all positions)"
            )
        g = torch.Generator().manual_seed(seed)
        return sorted(int(i) for i in torch.randperm(T, generator=g)[:positions])
    pos = sorted(set(int(p) for p in positions))
    if not pos or pos[0] < 0 or pos[-1] >= T:
        raise ValueError(f"loss positions must lie in 0..{T - 1}, got {list(positions)}")
    return pos


def offset_profile(
    model: nn.Module,
    batch,
    loss_fn: LossFn,
    *,
    max_offset: int = 8,
    positions: int | Sequence[int] | None = None,
    seed: int = 0,
    forward_fn: ForwardFn = default_forward,
    reference: dict[str, torch.Tensor] | None = None,
    parts: list[GroupPart] | None = None,
    verify: bool = True,
) -> OffsetProfile:
    """G(tau) for tau = 0..K (and tau > K) by one backward per (sampled) loss position.

    ``positions``: None/0 for all loss positions, an int S for a seeded sample of S, or a
    list. ``reference`` (the vanilla gradient, per parameter) enables the per-group share
    statistics. ``verify`` checks, on the first loss position, that the hooks account for
    all of autograd's gradient (a parameter used outside the covered modules is an error).
    """
    if isinstance(max_offset, bool) or not isinstance(max_offset, int) or max_offset < 0:
        raise ValueError(f"max_offset K must be an integer >= 0 (bins tau = 0..K and tau > K), got {max_offset!r}")
    x, y = _check_batch(model, batch)
    T = x.shape[1]
    K = min(max_offset, T - 1)
    pos = sample_positions(T, positions, seed)
    scale = T / len(pos)
    named = _trainable(model)
    names = {id(p): n for n, p in named}
    parts = parts if parts is not None else parameter_groups(model)
    groups = _collect(parts)
    cap = _PositionCapture(model, names, T, K)
    try:
        loss = loss_fn(forward_fn(model, x, VANILLA), y)  # (B, T)
    finally:
        cap.remove()
    if loss.dim() != 2 or loss.shape[1] != T:
        raise ValueError(f"loss_fn must return the (B, T) per-position loss, got shape {tuple(loss.shape)}")
    norm = loss.shape[0] * T
    cap.cur = {n: torch.zeros(K + 2, *p.shape, dtype=p.dtype, device=p.device) for n, p in named}  # (K+2, *shape)
    acc = {n: torch.zeros_like(t) for n, t in cap.cur.items()}
    stats = len(pos) < T  # per-position terms are needed for the variance only when sampling
    refs = None if reference is None else [p.view(reference[p.name]).reshape(-1) for p in parts]
    sq_terms: list[torch.Tensor] = []  # per position: (n_parts, K+2) squared norms of the parts
    proj_terms: list[torch.Tensor] = []  # per position: (n_parts, K+2) dot products with the reference
    for k, j in enumerate(pos):
        cap.j = j
        for t in cap.cur.values():
            t.zero_()
        cap.full = {n: torch.zeros_like(p) for n, p in named} if (verify and k == 0) else None
        total = _grad(loss[:, j].sum() / norm, named, retain_graph=k < len(pos) - 1)
        if cap.full is not None:
            _verify_coverage(cap.full, total, j)
        for n, t in cap.cur.items():
            t[K + 1] = total[n] - t[: K + 1].sum(0)  # tau > K: the rest of autograd's gradient
            acc[n] += t
        if stats:
            sq, pr = _part_terms(cap.cur, parts, refs)
            sq_terms.append(sq)
            if pr is not None:
                proj_terms.append(pr)
    cap.j = None
    bins = [{n: t[b] * scale for n, t in acc.items()} for b in range(K + 2)]
    sq_sum, proj = {}, {}
    if stats:
        sq_all = torch.stack(sq_terms)  # (S, n_parts, K+2)
        pr_all = torch.stack(proj_terms) if proj_terms else None
        for g, ps in groups.items():
            rows = [parts.index(p) for p in ps]
            sq_sum[g] = sq_all[:, rows].sum((0, 1)).tolist()
            if pr_all is not None:
                proj[g] = pr_all[:, rows].sum(1).T.tolist()  # (K+2, S)
    return OffsetProfile(seq_len=T, max_offset=K, positions=pos, bins=bins, scale=scale, sq_norm_sum=sq_sum, proj=proj)


def _part_terms(cur: dict[str, torch.Tensor], parts: list[GroupPart], refs: list[torch.Tensor] | None):
    """Per group part and bin: ||g_j||^2 and <g_j, reference> ((n_parts, K+2) each, float64)."""
    sq, pr = [], []
    for k, p in enumerate(parts):
        t = cur[p.name]
        v = t if p.stop is None else t.narrow(p.dim + 1, p.start, p.stop - p.start)
        v = v.reshape(t.shape[0], -1)  # (K+2, numel)
        sq.append(torch.linalg.vector_norm(v, dim=1).double() ** 2)
        if refs is not None:
            pr.append((v @ refs[k]).double())
    return torch.stack(sq), (torch.stack(pr) if refs is not None else None)


def _verify_coverage(full: dict[str, torch.Tensor], total: dict[str, torch.Tensor], j: int) -> None:
    for n, g in total.items():
        tol = (1e-9 if g.dtype == torch.float64 else 1e-3) * float(g.norm()) + 1e-12
        if float((full[n] - g).norm()) > tol + (1e-9 if g.dtype == torch.float64 else 1e-3) * float(full[n].norm()):
            raise ValueError(
                f"offset profile: the gradient of {n} is not fully explained by the hooked modules (loss position {j}); "
                f"the parameter is used outside the forward of the module that owns it. Freeze it or use profile=False"
            )


def summarize_profile(profile: OffsetProfile, reference: dict[str, torch.Tensor], parts: list[GroupPart]) -> dict:
    """group -> {"sq_norm", "sq_norm_unbiased", "share", "share_se"}, one value per bin."""
    T, S = profile.seq_len, len(profile.positions)
    var_factor = T * T * (1 - S / T) / S  # Var(G_hat) = var_factor * sigma^2
    out = {}
    for g, ps in _collect(parts).items():
        ref = _flat(reference, ps)
        rr = _dot(ref, ref)
        row = {"sq_norm": [], "sq_norm_unbiased": [], "share": [], "share_se": []}
        for b, bin_ in enumerate(profile.bins):
            v = _flat(bin_, ps)
            sq = _dot(v, v)
            # sample variance over J, summed over coordinates: (sum ||g_j||^2 - S ||g_bar||^2) / (S - 1)
            gbar_sq = sq / (T * T)
            if S == T:
                tr_var, share_var = 0.0, 0.0
            elif S > 1:
                tr_var = var_factor * max(profile.sq_norm_sum[g][b] - S * gbar_sq, 0.0) / (S - 1)
                p = profile.proj.get(g, [[]] * len(profile.bins))[b]
                mean = sum(p) / S if p else 0.0
                share_var = var_factor * sum((q - mean) ** 2 for q in p) / (S - 1) if p else float("nan")
            else:
                tr_var, share_var = float("nan"), float("nan")
            row["sq_norm"].append(sq)
            row["sq_norm_unbiased"].append(sq - tr_var)
            row["share"].append(_dot(v, ref) / rr if rr > 0 else float("nan"))
            row["share_se"].append(math.sqrt(share_var) / rr if rr > 0 and share_var == share_var else float("nan"))
        out[g] = row
    return out


# ------------------------------------------------------------------------ one call
@dataclass
class OffsetGradients:
    """Where one batch's gradient comes from, summarised per parameter group."""

    seq_len: int
    batch_size: int
    max_offset: int
    offsets: list[str]  # bin labels: "0", "1", ..., "K", ">K"
    positions: list[int]  # loss positions the profile used
    sampled: bool
    estimator: str
    split: dict  # group -> split_summary (exact, two backward passes)
    profile: dict  # group -> {"sq_norm", "sq_norm_unbiased", "share", "share_se"} per bin
    profile_check: dict = field(default_factory=dict)  # max relative deviations of the bins' sums

    def to_dict(self) -> dict:
        return asdict(self)


ESTIMATOR_EXACT = "exact: every loss position differentiated once"
ESTIMATOR_SAMPLED = (
    "Horvitz-Thompson over a seeded uniform sample J of S loss positions: G_hat(tau) = (T/S) sum_{j in J} "
    "dL_j/dtheta_{j-tau}; unbiased, Var = T^2 (1 - S/T) sigma^2 / S with sigma^2 the sample variance over J. "
    "share is unbiased (share_se its standard error); sq_norm is biased up by tr(Var), sq_norm_unbiased subtracts it"
)


def offset_gradients(
    model: nn.Module,
    batch,
    loss_fn: LossFn,
    *,
    max_offset: int = 8,
    positions: int | Sequence[int] | None = None,
    seed: int = 0,
    forward_fn: ForwardFn = default_forward,
    profile: bool = True,
    parts: list[GroupPart] | None = None,
) -> OffsetGradients:
    """Offset decomposition of one batch's gradient, summarised per parameter group.

    The split G(0) / future is exact (two backward passes). With ``profile`` the per-offset
    profile G(tau), tau = 0..max_offset and > max_offset, adds one backward per loss
    position (``positions``: None for all, an int S for a seeded sample). The model is put
    in eval mode (no dropout) while measuring.
    """
    if isinstance(max_offset, bool) or not isinstance(max_offset, int) or max_offset < 0:
        raise ValueError(f"max_offset K must be an integer >= 0 (bins tau = 0..K and tau > K), got {max_offset!r}")
    x, y = _check_batch(model, batch)
    T = x.shape[1]
    sample_positions(T, positions, seed)  # validate before any work
    was_training = model.training
    model.eval()
    try:
        parts = parts if parts is not None else parameter_groups(model)
        split = gradient_split(model, (x, y), loss_fn, forward_fn=forward_fn)
        summary = summarize_split(split, parts)
        prof_summary, check, pos, K = {}, {}, [], min(max_offset, T - 1)
        if profile:
            prof = offset_profile(
                model, (x, y), loss_fn, max_offset=max_offset, positions=positions, seed=seed,
                forward_fn=forward_fn, reference=split.vanilla, parts=parts,
            )
            prof_summary = summarize_profile(prof, split.vanilla, parts)
            pos = prof.positions
            check = _profile_check(prof, split)
    finally:
        model.train(was_training)
    return OffsetGradients(
        seq_len=T, batch_size=int(x.shape[0]), max_offset=K,
        offsets=[str(t) for t in range(K + 1)] + [f">{K}"], positions=pos, sampled=bool(pos) and len(pos) < T,
        estimator=(ESTIMATOR_SAMPLED if pos and len(pos) < T else ESTIMATOR_EXACT) if profile else "",
        split=summary, profile=prof_summary, profile_check=check,
    )


def _profile_check(prof: OffsetProfile, split: GradientSplit) -> dict:
    """Relative deviation of sum_tau G(tau) from vanilla and of G(0) from the myopic gradient
    (both ~1e-7 in float32 when exact; sampling error otherwise)."""
    names = list(split.vanilla)
    v = torch.cat([split.vanilla[n].reshape(-1) for n in names])
    m = torch.cat([split.myopic[n].reshape(-1) for n in names])
    s = torch.cat([sum(b[n] for b in prof.bins).reshape(-1) for n in names])
    g0 = torch.cat([prof.bins[0][n].reshape(-1) for n in names])
    return {
        "sum_vs_vanilla": float((s - v).norm() / v.norm().clamp_min(1e-30)),
        "g0_vs_myopic": float((g0 - m).norm() / m.norm().clamp_min(1e-30)),
    }


# ------------------------------------------------------------------------ per position
@dataclass
class PositionGradients:
    """Where the gradient the computation at each position i receives comes from, on one batch.

    With g_i(tau) = dL_{i+tau}/dtheta_i and g_i = sum_tau g_i(tau) (the whole gradient of
    theta_i), ``inner[group][i, j] = <g_i(j - i), g_i>`` restricted to the group's
    parameters (zero for j < i) and ``sq_norm[group][i] = ||g_i||^2``. Row i of
    ``inner / sq_norm`` is a signed decomposition of g_i along itself: it adds up to 1.
    """

    seq_len: int
    inner: dict[str, torch.Tensor]  # group -> (T, T) float64: row i computation, column j loss position
    sq_norm: dict[str, torch.Tensor]  # group -> (T,) float64

    def offset_shares(self, group: str = "total") -> torch.Tensor:
        """(T, T): [i, tau] = share of g_i that comes from the loss at i + tau (0 past the end)."""
        inner, sq = self.inner[group], self.sq_norm[group]
        T = self.seq_len
        out = torch.zeros(T, T, dtype=torch.float64)
        for i in range(T):
            if sq[i] > 0:
                out[i, : T - i] = inner[i, i:] / sq[i]
        return out

    def future_share(self, group: str = "total") -> torch.Tensor:
        """(T,): share of g_i from the losses at tau >= 1 (1 - the share of its own loss)."""
        return self.offset_shares(group)[:, 1:].sum(1)


class _InnerCapture(_PositionCapture):
    """The profile's hooks on a batch of T copies of the sequences, copy j carrying only L_j.

    While ``G`` is None a backward fills ``cur`` like the profile's capture (the summed
    loss: every g_i). Once ``G`` (name -> (T, *param.shape), row i = g_i) is set, the
    backward adds <dL_j/dtheta_i, g_i> to ``inner[group][i, j]`` for every position i and
    copy j at once, straight from each module's input and output gradient, without forming
    dL_j/dtheta_i. A parameter shared by two modules (tied embeddings) is right too: each
    module's contribution meets the whole g_i of the parameter.
    """

    G: dict[str, torch.Tensor] | None = None
    rows: int = 1  # T copies * B sequences
    inner: dict[str, torch.Tensor]
    by_param: dict[str, list[GroupPart]]  # parameter name -> its parts in the chosen groups

    def _forward_hook(self, m: nn.Module, kind: str, label: str):
        base = super()._forward_hook(m, kind, label)

        def hook(mod, inputs, output):
            # an output shared by every row (learned positions: (T, C) or (1, T, C)) is broadcast
            # into the batch later, which would sum the copies' gradients; give each row its own view
            if torch.is_tensor(output) and output.requires_grad and self.rows > 1 and torch.is_tensor(inputs[0]):
                shared = output.dim() == 2 or (output.dim() >= 3 and output.shape[0] == 1)
                if shared:
                    out = output if output.dim() >= 3 else output.unsqueeze(0)
                    inp = inputs[0] if output.dim() >= 3 else inputs[0].unsqueeze(0)
                    out = out.expand(self.rows, *out.shape[1:])
                    inp = inp.expand(self.rows, *inp.shape[1:])
                    base(mod, (inp,) + tuple(inputs[1:]), out)
                    return out
            return base(mod, inputs, output)

        return hook

    def _backward(self, m, kind, saved, params, g, ax) -> None:
        if self.G is None:
            return super()._backward(m, kind, saved, params, g, ax)
        T = self.T
        dy = g.detach().movedim(ax, 0).reshape(T, -1, g.shape[-1])  # (T positions, T copies * B, out)
        for role, name in params.items():
            for part in self.by_param.get(name, ()):
                rows = _inner_by_position(kind, m, role, saved, dy, self.G[name], part)  # (T, T * B)
                self.inner[part.group] += rows.view(T, T, -1).sum(-1).double()  # (i, j)


def _inner_by_position(kind, m, role, saved, dy, G, part: GroupPart) -> torch.Tensor:
    """(n, N): <contribution of row b at position i to one parameter part's gradient, G[i] on that part>.

    saved (n, N, in) (token ids (n, N) for embeddings), dy (n, N, out), G (n, *param.shape)."""

    def cut(t: torch.Tensor, axis: int) -> torch.Tensor:
        return t if part.stop is None else t.narrow(axis, part.start, part.stop - part.start)

    if kind == "embedding":  # row id_b of the table receives dy_b
        rows = G[torch.arange(G.shape[0], device=G.device).unsqueeze(1), saved]  # (n, N, C)
        keep = torch.ones_like(saved, dtype=torch.bool)
        if part.stop is not None and part.dim == 0:
            keep = (saved >= part.start) & (saved < part.stop)
        if m.padding_idx is not None:
            keep = keep & (saved != m.padding_idx)
        val = (cut(rows, 2) * cut(dy, 2)).sum(-1) if part.dim == 1 else (rows * dy).sum(-1)
        return val * keep
    if role == "bias":
        return (cut(dy, 2) * cut(G, 1).unsqueeze(1)).sum(2)
    if kind == "linear":  # weight (out, in): dy_b^T G_i x_b
        d, x, W = (cut(dy, 2), saved, cut(G, 1)) if part.dim == 0 else (dy, cut(saved, 2), cut(G, 2))
        return ((x @ W.transpose(1, 2)) * d).sum(2)
    if kind == "conv1d":  # weight (in, out)
        d, x, W = (dy, cut(saved, 2), cut(G, 1)) if part.dim == 0 else (cut(dy, 2), saved, cut(G, 2))
        return ((x @ W) * d).sum(2)
    return (cut(dy, 2) * cut(saved, 2) * cut(G, 1).unsqueeze(1)).sum(2)  # norms: weight * xhat


POSITION_SPLIT_LIMIT = 2**28  # numbers held at once by position_gradients (T * params, ~1 GB float32)


def position_gradients(
    model: nn.Module,
    batch,
    loss_fn: LossFn,
    *,
    groups: Sequence[str] = ("total", "all:W_K+W_V"),
    forward_fn: ForwardFn = default_forward,
    parts: list[GroupPart] | None = None,
) -> PositionGradients:
    """Per position i, the split of the gradient of theta_i by the loss position j >= i it comes from.

    Exact, with one forward of T copies of the batch (copy j keeps only its loss L_j) and two
    backward passes through the hooks of the offset profile: the first gives every g_i
    (held as (T, *shape) per parameter), the second every <g_i(j - i), g_i> at once, from
    each module's input and output gradient in copy j. ``groups`` names groups of
    :func:`parameter_groups` (``total``, ``all:W_K+W_V``, ``h0.W_K``, ...); groups the
    model lacks are left out. Activations grow T-fold: meant for one prompt or a few.
    """
    x, y = _check_batch(model, batch)
    B, T = x.shape[0], x.shape[1]
    named = _trainable(model)
    n_params = sum(p.numel() for _, p in named)
    if T * n_params > POSITION_SPLIT_LIMIT:
        raise ValueError(
            f"the per-position gradient split of {T} positions of a {n_params:,}-parameter model holds "
            f"{T * n_params:,} numbers (limit {POSITION_SPLIT_LIMIT:,}); use a shorter sequence"
        )
    parts = parts if parts is not None else parameter_groups(model)
    collected = _collect(parts)
    chosen = {g: collected[g] for g in groups if g in collected}
    if not chosen:
        raise ValueError(f"none of the groups {list(groups)} exists in this model; known: {', '.join(collected)}")
    reps = (T,) + (1,) * (x.dim() - 1)
    xr, yr = x.repeat(*reps), y.repeat(*((T,) + (1,) * (y.dim() - 1)))  # (T * B, T, ...): copy j = rows jB..jB+B-1
    cap = _InnerCapture(model, {id(p): n for n, p in named}, T, T - 1)
    cap.rows = T * B
    was_training = model.training
    model.eval()
    try:
        loss = loss_fn(forward_fn(model, xr, VANILLA), yr)  # (T * B, T)
    finally:
        cap.remove()
        model.train(was_training)
    if loss.dim() != 2 or loss.shape[1] != T:
        raise ValueError(f"loss_fn must return the (B, T) per-position loss, got shape {tuple(loss.shape)}")
    own = loss.view(T, B, T).diagonal(dim1=0, dim2=2)  # (B, T): copy j's loss at position j
    objective = own.sum() / (B * T)  # = the mean loss of the batch; copy j carries L_j
    # g_i: the summed loss, attributed as if it were the last position's (row b holds g_{T-1-b})
    cap.cur = {n: torch.zeros(T + 1, *p.shape, dtype=p.dtype, device=p.device) for n, p in named}
    cap.j, cap.full = T - 1, {n: torch.zeros_like(p) for n, p in named}
    total = _grad(objective, named, retain_graph=True)
    _verify_coverage(cap.full, total, T - 1)
    cap.G = {n: t[:T].flip(0) for n, t in cap.cur.items()}  # name -> (T, *shape), row i = g_i
    cap.cur, cap.full = {}, None
    cap.by_param = {}
    for name, ps in chosen.items():
        for p in ps:
            cap.by_param.setdefault(p.name, []).append(GroupPart(name, p.name, p.dim, p.start, p.stop))
    cap.inner = {name: torch.zeros(T, T, dtype=torch.float64) for name in chosen}
    _grad(objective, named)
    cap.j = None
    sq = {}
    for name, ps in chosen.items():
        flat = torch.cat([(cap.G[p.name] if p.stop is None else cap.G[p.name].narrow(p.dim + 1, p.start, p.stop - p.start))
                          .reshape(T, -1) for p in ps], 1).double()
        sq[name] = (flat * flat).sum(1)
    return PositionGradients(seq_len=T, inner=cap.inner, sq_norm=sq)


# ------------------------------------------------------------------------ context length
def context_length_shares(
    model: nn.Module,
    batch,
    loss_fn: LossFn,
    lengths: Sequence[int],
    *,
    forward_fn: ForwardFn = default_forward,
    parts: list[GroupPart] | None = None,
) -> list[dict]:
    """For each context length N: the split on the first N positions of ``batch``.

    Returns one row per N with the future share of the W_K + W_V gradient (all layers and
    per layer) and the other split numbers. If each key/value received equal, aligned
    gradient from its own loss and from each later loss that reads it, the future share of
    the mean loss would be (N - 1) / (N + 1): ``uniform_reading_prediction``.
    """
    x, y = _check_batch(model, batch)
    T = x.shape[1]
    lengths = [int(n) for n in lengths]
    if not lengths:
        raise ValueError("give at least one context length")
    for n in lengths:
        if n < 2:
            raise ValueError(f"context lengths must be >= 2, got {n}")
        if n > T:
            raise ValueError(f"context length {n} is longer than the sequences ({T} positions); use lengths <= {T}")
    parts = parts if parts is not None else parameter_groups(model)
    was_training = model.training
    model.eval()
    rows = []
    try:
        for n in lengths:
            split = gradient_split(model, (x[:, :n], y[:, :n]), loss_fn, forward_fn=forward_fn)
            s = summarize_split(split, parts)
            kv = s.get("all:W_K+W_V", s["total"])
            layers = sorted({g.split(".", 1)[0] for g in s if re.match(r"h\d+\.W_[KV]$", g)}, key=lambda h: int(h[1:]))
            per_layer = {}
            for h in layers:
                ps = [p for p in parts if p.group in (f"{h}.W_K", f"{h}.W_V")]
                per_layer[h] = split_summary(_flat(split.vanilla, ps), _flat(split.myopic, ps))["future_share"]
            rows.append({
                "N": n,
                "kv_future_share": kv["future_share"],
                "kv_future_norm_share": kv["future_norm_share"],
                "kv_future_to_myopic_norm": kv["future_to_myopic_norm"],
                "kv_cos_myopic_future": kv["cos_myopic_future"],
                "kv_future_share_per_layer": per_layer,
                "W_K_future_share": s.get("all:W_K", {}).get("future_share"),
                "W_V_future_share": s.get("all:W_V", {}).get("future_share"),
                "total_future_share": s["total"]["future_share"],
                "uniform_reading_prediction": (n - 1) / (n + 1),
            })
    finally:
        model.train(was_training)
    return rows


# ------------------------------------------------------------------------ during training
def gradient_split_tracker(loss_fn: LossFn, forward_fn: ForwardFn = default_forward):
    """A training callback: norms of the myopic and future gradients on the step's batch,
    their cosine, and the future share of the vanilla gradient (the paper's gradient-angle
    analysis). Costs two extra forward + backward passes each time it runs."""

    def callback(step: int, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
        split = gradient_split(model, (x, y), loss_fn, forward_fn=forward_fn)
        names = list(split.vanilla)
        v = torch.cat([split.vanilla[n].reshape(-1) for n in names])
        g0 = torch.cat([split.myopic[n].reshape(-1) for n in names])
        s = split_summary(v, g0)
        return {
            "grad_vanilla_norm": math.sqrt(s["vanilla_sq_norm"]),
            "grad_myopic_norm": math.sqrt(s["myopic_sq_norm"]),
            "grad_future_norm": math.sqrt(s["future_sq_norm"]),
            "grad_cos_myopic_future": s["cos_myopic_future"],
            "grad_future_share": s["future_share"],
        }

    return callback
