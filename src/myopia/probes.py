"""Linear probes on the residual stream and causal edits of it (the mechanism).

Layers are numbered as the hidden-state list ``model(x, return_hidden=True)`` returns them,
for the built-in GPT and for an HF causal LM alike: layer 0 is the residual stream entering
the first block (embeddings), layer ℓ = 1..n_layer-1 the stream after block ℓ, layer
n_layer the stream after the last block *and* the final norm (what the head reads). A
state at layer ℓ < n_layer can influence later positions only through blocks ℓ..n_layer-1;
the state at layer n_layer influences only its own position's output.

What is here:

* :func:`fit_ridge` — a ridge probe for real-valued targets (R²), the regularisation
  chosen on a validation split; a closed form (eigendecomposition of the Gram matrix), so
  one decomposition serves every candidate penalty.
* :func:`fit_softmax` — a multinomial logistic probe for token classes (held-out cross-
  entropy, top-1), L2 penalty chosen on a validation split, fitted by L-BFGS along a
  warm-started path from strong to weak penalties.
* :func:`fit_eraser` — LEACE concept erasure (Belrose et al. 2023, arXiv 2306.03819): the
  least-squares edit of the state that leaves no linear information about a target,
  ``x' = x - W⁺ P W (x - μ)`` with W = Σ^{-1/2} (whitening) and P the projector onto the
  column space of W Σ_xz. Erasing what a probe reads is the causal test paired with it.
* :func:`edit_residual` — a context manager that replaces the residual stream at one layer
  by ``edit(h)`` during every forward of a model (forward hooks on the built-in GPT's
  blocks and final norm, or on an HF model's decoder layers and final norm);
  :func:`at_positions` makes an edit that touches one position per sequence. A steering
  experiment adds a vector with the same two calls.

Everything here takes plain tensors; :mod:`myopia.measures.probe` decides which data,
which targets and which models.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

# Candidate penalties on standardised inputs (each feature has unit variance, so the same
# grid fits any width): from near-unregularised to strongly shrunk.
RIDGE_LAMBDAS = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
SOFTMAX_LAMBDAS = (1e-1, 1e-2, 1e-3, 1e-4)
MIN_STD = 1e-6  # a feature with less spread than this is constant: it is not scaled up


# ---------------------------------------------------------------------- hidden states
@torch.no_grad()
def hidden_states(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The residual stream at every layer: n_layer + 1 tensors (B, T, C), no gradient."""
    was_training = model.training
    model.eval()
    try:
        _, hidden = model(x, return_hidden=True)
    finally:
        model.train(was_training)
    return [h.detach() for h in hidden]


# ---------------------------------------------------------------------- probes
@dataclass
class Standardizer:
    """Per-feature centring and scaling, fitted on the probe's training inputs."""

    mean: torch.Tensor  # (C,)
    scale: torch.Tensor  # (C,)

    @classmethod
    def fit(cls, X: torch.Tensor) -> "Standardizer":
        mean = X.mean(0)
        std = X.std(0, unbiased=False)
        return cls(mean, torch.where(std > MIN_STD, std, torch.ones_like(std)))

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return (X - self.mean) / self.scale


@dataclass
class LinearProbe:
    """``predict(X) = standardise(X) @ weight + bias``: (N, C) -> (N, m).

    For a ridge probe the outputs are the predicted targets, for a softmax probe the class
    logits. ``lam`` is the penalty chosen on the validation split, ``val_score`` its
    validation score (R² for ridge, cross-entropy for softmax)."""

    kind: str  # "ridge" | "softmax"
    standardizer: Standardizer
    weight: torch.Tensor  # (C, m)
    bias: torch.Tensor  # (m,)
    lam: float
    val_score: float

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        return self.standardizer(X.to(self.weight.dtype)) @ self.weight + self.bias

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """Flat tensors for safetensors: ``prefix.{weight,bias,mean,scale}``."""
        return {f"{prefix}.weight": self.weight, f"{prefix}.bias": self.bias,
                f"{prefix}.mean": self.standardizer.mean, f"{prefix}.scale": self.standardizer.scale}


def r2_score(pred: torch.Tensor, y: torch.Tensor) -> float:
    """1 - SSE/SST over all entries (N,) or (N, m), SST around y's own mean."""
    y = y.reshape(pred.shape).double()
    sst = ((y - y.mean(0)) ** 2).sum()
    sse = ((y - pred.double()) ** 2).sum()
    return float(1 - sse / sst) if sst > 0 else float("nan")


def fit_ridge(
    X: torch.Tensor, y: torch.Tensor, X_val: torch.Tensor, y_val: torch.Tensor,
    lambdas: Sequence[float] = RIDGE_LAMBDAS,
) -> LinearProbe:
    """Ridge regression of y (N,) or (N, m) on X (N, C), penalty chosen by validation R².

    Minimises mean ||standardise(X) w + b - y||² + lam ||w||² (the bias unpenalised): with
    centred inputs and targets, w = (XᵀX/N + lam I)⁻¹ Xᵀy/N, evaluated for every lam from
    one eigendecomposition of XᵀX/N (float64)."""
    y2, yv2 = y.reshape(len(y), -1).double(), y_val.reshape(len(y_val), -1).double()
    std = Standardizer.fit(X.double())
    Z, Zv = std(X.double()), std(X_val.double())
    y_mean = y2.mean(0)
    evals, evecs = torch.linalg.eigh(Z.T @ Z / len(Z))  # (C,), (C, C)
    proj = evecs.T @ (Z.T @ (y2 - y_mean) / len(Z))  # (C, m) in the eigenbasis
    best = None
    for lam in lambdas:
        w = evecs @ (proj / (evals.clamp(min=0) + lam).unsqueeze(1))  # (C, m)
        score = r2_score(Zv @ w + y_mean, yv2)
        if best is None or score > best[0]:
            best = (score, lam, w)
    score, lam, w = best
    return LinearProbe("ridge", std, w, y_mean, float(lam), score)


def softmax_loss(Z: torch.Tensor, z: torch.Tensor, w: torch.Tensor, b: torch.Tensor, lam: float) -> torch.Tensor:
    """The softmax probe's objective: mean cross-entropy + lam/2 ||w||² (bias unpenalised)."""
    return F.cross_entropy(Z @ w + b, z) + 0.5 * lam * (w * w).sum()


def _lbfgs(Z, z, w, b, lam, max_iter: int) -> None:
    # float64 (exact comparisons) runs to the gradient's rounding floor; float32 (probes of
    # hidden states) stops once a step changes the loss by less than 1e-6 nats
    tol_grad, tol_change = (1e-9, 1e-20) if Z.dtype == torch.float64 else (1e-5, 1e-6)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=tol_grad, tolerance_change=tol_change)

    def closure():
        opt.zero_grad()
        loss = softmax_loss(Z, z, w, b, lam)
        loss.backward()
        return loss

    opt.step(closure)


def fit_softmax(
    X: torch.Tensor, z: torch.Tensor, n_classes: int, X_val: torch.Tensor, z_val: torch.Tensor,
    lambdas: Sequence[float] = SOFTMAX_LAMBDAS, max_iter: int = 100,
) -> LinearProbe:
    """Multinomial logistic regression of classes z (N,) on X (N, C), penalty chosen by
    validation cross-entropy. Penalties are fitted from the strongest to the weakest, each
    starting at the previous solution (a warm-started path), and the path stops once the
    validation loss rises: it is unimodal along the path in practice, and the weakest
    penalties are the slowest to fit. The computation runs in X's dtype (float64 for exact
    comparisons)."""
    dtype = X.dtype if X.dtype == torch.float64 else torch.float32
    std = Standardizer.fit(X.to(dtype))
    Z, Zv = std(X.to(dtype)), std(X_val.to(dtype))
    w = torch.zeros(Z.shape[1], n_classes, dtype=dtype, requires_grad=True)
    counts = torch.bincount(z, minlength=n_classes).to(dtype)
    b = torch.log((counts + 1) / (counts.sum() + n_classes)).requires_grad_(True)  # start at the class prior
    best = None
    with torch.enable_grad():
        for lam in sorted(lambdas, reverse=True):
            _lbfgs(Z, z, w, b, float(lam), max_iter)
            with torch.no_grad():
                score = float(F.cross_entropy(Zv @ w + b, z_val))
            if best is not None and score > best[0]:
                break
            best = (score, lam, w.detach().clone(), b.detach().clone())
    score, lam, w_best, b_best = best
    return LinearProbe("softmax", std, w_best, b_best, float(lam), score)


# ---------------------------------------------------------------------- concept erasure
@dataclass
class ConceptEraser:
    """``erase(x) = x - (x - mean) @ proj.T``: removes every linear trace of a target.

    ``proj`` (C, C) is W⁺ P W of LEACE; ``rank`` the dimension of the erased subspace."""

    mean: torch.Tensor  # (C,)
    proj: torch.Tensor  # (C, C)
    rank: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x - (x - self.mean.to(x.dtype)) @ self.proj.to(x.dtype).T

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.mean": self.mean, f"{prefix}.proj": self.proj}


def fit_eraser(X: torch.Tensor, Z: torch.Tensor, rel_tol: float = 1e-6) -> ConceptEraser:
    """LEACE eraser of target Z (N,) or (N, m) (a real value, or one-hot classes) from X (N, C).

    After the edit the cross-covariance of X and Z on this data is zero, so no linear
    probe predicts Z better than a constant; among all such affine edits it moves X the
    least in the whitened norm. Directions of (numerically) zero variance are left alone
    (the pseudo-inverse square root)."""
    X = X.double()
    Z = Z.reshape(len(Z), -1).double()
    mean = X.mean(0)
    Xc = X - mean
    cov = Xc.T @ Xc / len(X)  # (C, C)
    cross = Xc.T @ (Z - Z.mean(0)) / len(X)  # (C, m)
    evals, evecs = torch.linalg.eigh(cov)
    keep = evals > rel_tol * evals.max().clamp(min=torch.finfo(torch.float64).tiny)
    root = torch.where(keep, evals.clamp(min=0).sqrt(), torch.zeros_like(evals))
    inv_root = torch.where(keep, 1 / root.clamp(min=torch.finfo(torch.float64).tiny), torch.zeros_like(evals))
    W = evecs @ torch.diag(inv_root) @ evecs.T  # Σ^{-1/2}
    W_pinv = evecs @ torch.diag(root) @ evecs.T  # Σ^{1/2}
    U, s, _ = torch.linalg.svd(W @ cross, full_matrices=False)  # column space of W Σ_xz
    rank = int((s > rel_tol * s.max().clamp(min=torch.finfo(torch.float64).tiny)).sum()) if s.numel() else 0
    U = U[:, :rank]
    proj = W_pinv @ U @ U.T @ W  # (C, C)
    return ConceptEraser(mean, proj, rank)


# ---------------------------------------------------------------------- editing the residual stream
Edit = Callable[[torch.Tensor], torch.Tensor]  # (B, T, C) -> (B, T, C)


def residual_sites(model: nn.Module) -> tuple[list[nn.Module], nn.Module]:
    """(the n_layer blocks in order, the final norm) of the built-in GPT or an HF causal LM.

    The state at layer ℓ < n_layer is the input of block ℓ; layer n_layer is the output of
    the final norm."""
    inner = getattr(model, "hf", None)
    if inner is None and hasattr(model, "transformer") and hasattr(model.transformer, "h"):  # built-in GPT
        return list(model.transformer.h), model.transformer.ln_f
    base = getattr(inner if inner is not None else model, "base_model", None)
    for blocks_name, norm_name in (("layers", "norm"), ("h", "ln_f"), ("layers", "final_layer_norm")):
        blocks, norm = getattr(base, blocks_name, None), getattr(base, norm_name, None)
        if isinstance(blocks, nn.ModuleList) and isinstance(norm, nn.Module):
            return list(blocks), norm
    raise ValueError(
        f"cannot find the decoder layers and final norm of {type(inner or model).__name__}; supported: the built-in "
        f"GPT and HF models whose base model has layers+norm (Llama, Qwen2, Mistral), h+ln_f (GPT-2) or "
        f"layers+final_layer_norm (GPT-NeoX/Pythia)"
    )


def n_layers(model: nn.Module) -> int:
    return len(residual_sites(model)[0])


@contextmanager
def edit_residual(model: nn.Module, layer: int, edit: Edit) -> Iterator[None]:
    """Within the block, every forward of ``model`` replaces the residual stream at ``layer``
    (numbered as the hidden-state list, see the module docstring) by ``edit(h)``.

    ``h`` is (B, T, C); the edit may change any positions (see :func:`at_positions`). The
    hidden-state list a forward returns still holds the unedited state at ``layer``: the
    edit acts on what the next block (or the head) reads."""
    blocks, norm = residual_sites(model)
    if not 0 <= layer <= len(blocks):
        raise ValueError(f"layer {layer} is out of range: the model has layers 0..{len(blocks)}")
    if layer < len(blocks):
        def pre_hook(module, args, kwargs):
            if args:
                return (edit(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": edit(kwargs["hidden_states"])}

        handle = blocks[layer].register_forward_pre_hook(pre_hook, with_kwargs=True)
    else:
        def post_hook(module, args, output):
            if isinstance(output, tuple):
                return (edit(output[0]), *output[1:])
            return edit(output)

        handle = norm.register_forward_hook(post_hook)
    try:
        yield
    finally:
        handle.remove()


def at_positions(positions: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> Edit:
    """An edit that applies ``fn`` to the state of sequence b at position ``positions[b]`` only.

    ``positions``: (B,) long; ``fn``: (B, C) -> (B, C), e.g. a :class:`ConceptEraser`, or
    ``lambda h: donor_states`` to patch in the states of a counterfactual sequence."""

    def edit(h: torch.Tensor) -> torch.Tensor:  # (B, T, C)
        rows = torch.arange(h.shape[0], device=h.device)
        pos = positions.to(h.device)
        out = h.clone()
        out[rows, pos] = fn(h[rows, pos]).to(h.dtype)  # (B, C)
        return out

    return edit


@torch.no_grad()
def edited_output(model: nn.Module, x: torch.Tensor, layer: int, edit: Edit, **forward_kwargs) -> torch.Tensor:
    """``model(x)`` with the residual stream at ``layer`` replaced by ``edit(h)``."""
    with edit_residual(model, layer, edit):
        return model(x, **forward_kwargs)
