"""The probe and residual-edit mechanism (myopia.probes) against brute-force definitions.

Fits are checked against closed forms or an independent solver (Newton's method) on toy
problems in float64; edits against a hand-written forward pass of the built-in GPT and
against the hidden states HF models report.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import pytest

from myopia.model import GPT, GPTConfig
from myopia.policy import GradientPolicy
from myopia.probes import (
    ConceptEraser, Standardizer, at_positions, edited_output, fit_eraser, fit_ridge, fit_softmax,
    hidden_states, r2_score, softmax_loss,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def toy_regression(n=300, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(c, c, generator=g, dtype=torch.float64)
    X = torch.randn(n, c, generator=g, dtype=torch.float64) @ A + 3.0  # correlated, off-centre
    w = torch.randn(c, generator=g, dtype=torch.float64)
    y = X @ w + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    return X, y


def test_ridge_matches_closed_form_for_every_penalty_and_picks_best_validation_r2():
    X, y = toy_regression()
    Xv, yv = toy_regression(seed=1)
    lambdas = (1e-8, 1e-2, 1.0, 30.0)
    probe = fit_ridge(X, y, Xv, yv, lambdas)
    std = Standardizer.fit(X)
    Z = std(X)
    scores = {}
    for lam in lambdas:  # brute force: one linear solve per penalty
        w = torch.linalg.solve(Z.T @ Z / len(Z) + lam * torch.eye(Z.shape[1], dtype=torch.float64),
                               Z.T @ (y - y.mean()) / len(Z))
        scores[lam] = (r2_score(std(Xv) @ w + y.mean(), yv), w)
    best = max(scores, key=lambda lam: scores[lam][0])
    assert probe.lam == best
    torch.testing.assert_close(probe.weight.squeeze(1), scores[best][1], rtol=1e-9, atol=1e-11)
    # a vanishing penalty is ordinary least squares with an intercept
    ols = fit_ridge(X, y, Xv, yv, (1e-12,))
    design = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(design, y.unsqueeze(1)).solution
    torch.testing.assert_close(ols.predict(Xv).squeeze(1), (torch.cat([Xv, torch.ones(len(Xv), 1, dtype=torch.float64)], 1) @ coef).squeeze(1),
                               rtol=1e-7, atol=1e-8)


def newton_softmax(Z, z, n_classes, lam, steps=15):
    """Reference: Newton's method on the same objective, with the exact Hessian."""
    C = Z.shape[1]
    theta = torch.zeros(C * n_classes + n_classes, dtype=torch.float64)

    def objective(t):
        return softmax_loss(Z, z, t[: C * n_classes].view(C, n_classes), t[C * n_classes:], lam)

    for _ in range(steps):
        g = torch.autograd.functional.jacobian(objective, theta)
        H = torch.autograd.functional.hessian(objective, theta)
        # the bias is unpenalised and softmax is shift-invariant: pinv picks the minimum-norm step
        theta = theta - torch.linalg.pinv(H) @ g
    return theta[: C * n_classes].view(C, n_classes), theta[C * n_classes:]


def test_softmax_probe_matches_newton_reference_and_is_stationary():
    g = torch.Generator().manual_seed(0)
    n, C, m = 150, 3, 3
    X = torch.randn(n, C, generator=g, dtype=torch.float64)
    z = (X @ torch.randn(C, m, generator=g, dtype=torch.float64) + torch.randn(n, m, generator=g, dtype=torch.float64)).argmax(1)
    lam = 0.05
    probe = fit_softmax(X, z, m, X, z, lambdas=(lam,), max_iter=300)
    Z = Standardizer.fit(X)(X)
    w_ref, b_ref = newton_softmax(Z, z, m, lam)
    # softmax is invariant to adding a constant to every class's bias: compare centred biases
    torch.testing.assert_close(probe.weight, w_ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(probe.bias - probe.bias.mean(), b_ref - b_ref.mean(), rtol=1e-6, atol=1e-7)
    w = probe.weight.clone().requires_grad_(True)
    b = probe.bias.clone().requires_grad_(True)
    softmax_loss(Z, z, w, b, lam).backward()
    assert w.grad.abs().max() < 1e-7 and b.grad.abs().max() < 1e-7


def test_softmax_probe_chooses_penalty_on_validation():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, 12, generator=g, dtype=torch.float64)  # few examples, many features: overfits
    z = (X[:, 0] > 0).long()
    Xv = torch.randn(200, 12, generator=g, dtype=torch.float64)
    zv = (Xv[:, 0] > 0).long()
    lambdas = (1.0, 1e-1, 1e-3)
    probe = fit_softmax(X, z, 2, Xv, zv, lambdas=lambdas)
    val_ce = {lam: F.cross_entropy(fit_softmax(X, z, 2, Xv, zv, lambdas=(lam,)).predict(Xv), zv).item() for lam in lambdas}
    assert probe.lam == min(val_ce, key=val_ce.get)
    assert probe.val_score == pytest.approx(val_ce[probe.lam], rel=1e-6)


def test_eraser_leaves_no_linear_information_and_matches_scalar_closed_form():
    X, _ = toy_regression(n=400, c=6)
    z = X[:, 0] - 2 * X[:, 3] + torch.randn(len(X), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    er = fit_eraser(X, z)
    Xe = er(X)
    cross = (Xe - Xe.mean(0)).T @ (z - z.mean()) / len(X)
    assert cross.abs().max() < 1e-10
    assert er.rank == 1
    # scalar target: x' = x - c cᵀ Σ⁻¹ (x - μ) / (cᵀ Σ⁻¹ c), c = Cov(x, z)
    mu = X.mean(0)
    S = (X - mu).T @ (X - mu) / len(X)
    c = (X - mu).T @ (z - z.mean()) / len(X)
    Sc = torch.linalg.solve(S, c)
    torch.testing.assert_close(er.proj, torch.outer(c, Sc) / (c @ Sc), rtol=1e-8, atol=1e-10)
    # least squares on the erased states explains nothing in-sample
    ols = fit_ridge(Xe, z, Xe, z, (1e-12,))
    assert r2_score(ols.predict(Xe), z) < 1e-8
    # classes: one-hot targets of m classes erase an m-1 dimensional subspace
    cls = (X[:, 1] > X[:, 1].median()).long() + (X[:, 2] > 4).long()
    Y = F.one_hot(cls, 3).double()
    er3 = fit_eraser(X, Y)
    assert er3.rank == 2
    assert ((er3(X) - er3(X).mean(0)).T @ (Y - Y.mean(0))).abs().max() < 1e-9


def tiny_gpt(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).double().eval()


def manual_forward(model, x, layer, positions, delta):
    """Brute force: the GPT's forward written out, adding delta[b] to the state of sequence b
    at (layer, positions[b])."""
    tr = model.transformer
    h = tr.wte(x) + tr.wpe(torch.arange(x.shape[1]))
    rows = torch.arange(len(x))

    def add(h):
        h = h.clone()
        h[rows, positions] += delta
        return h

    for i, block in enumerate(tr.h):
        if i == layer:
            h = add(h)
        h = block(h, GradientPolicy())
    h = tr.ln_f(h)
    if layer == len(tr.h):
        h = add(h)
    return model.lm_head(h)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_edit_at_positions_equals_handwritten_forward(layer):
    model = tiny_gpt()
    x = torch.randint(0, 11, (4, 8), generator=torch.Generator().manual_seed(0))
    positions = torch.tensor([0, 3, 7, 5])
    delta = torch.randn(4, 8, dtype=torch.float64)
    out = edited_output(model, x, layer, at_positions(positions, lambda h: h + delta))
    torch.testing.assert_close(out, manual_forward(model, x, layer, positions, delta), rtol=0, atol=1e-12)
    clean = model(x)
    for b, t in enumerate(positions.tolist()):
        assert torch.equal(out[b, :t], clean[b, :t])  # the past never sees an edit
        if layer == 2:  # after the final norm only the edited position's own output changes
            assert torch.equal(out[b, t + 1:], clean[b, t + 1:])


def test_edit_that_changes_nothing_changes_nothing_and_hooks_are_removed():
    model = tiny_gpt()
    x = torch.randint(0, 11, (3, 8))
    clean = model(x)
    for layer in range(3):
        assert torch.equal(edited_output(model, x, layer, lambda h: h), clean)
        assert torch.equal(edited_output(model, x, layer, at_positions(torch.tensor([1, 2, 3]), lambda h: h)), clean)
    assert torch.equal(model(x), clean)
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="out of range"):
        edited_output(model, x, 3, lambda h: h)


def test_erasing_a_direction_the_model_never_writes_has_no_effect():
    model = tiny_gpt(seed=2)
    j = 5  # residual dimension that no embedding and no block writes
    with torch.no_grad():
        model.transformer.wte.weight[:, j] = 0
        model.transformer.wpe.weight[:, j] = 0
        for block in model.transformer.h:
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                proj.weight[j] = 0
                proj.bias[j] = 0
    x = torch.randint(0, 11, (4, 8))
    hid = hidden_states(model, x)
    assert all(hid[layer][..., j].abs().max() == 0 for layer in range(2))
    e_j = torch.zeros(8, dtype=torch.float64)
    e_j[j] = 1
    never = ConceptEraser(mean=torch.zeros(8, dtype=torch.float64), proj=torch.outer(e_j, e_j), rank=1)
    clean = model(x)
    positions = torch.tensor([2, 4, 6, 7])
    assert torch.equal(edited_output(model, x, 1, at_positions(positions, never)), clean)
    # the same edit along a direction the model does write changes later outputs: the test can fail
    e_0 = torch.zeros(8, dtype=torch.float64)
    e_0[0] = 1
    used = ConceptEraser(mean=torch.zeros(8, dtype=torch.float64), proj=torch.outer(e_0, e_0), rank=1)
    assert not torch.allclose(edited_output(model, x, 1, at_positions(positions, used)), clean)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_hf_edit_sites_see_the_reported_hidden_states(tmp_path, family):
    from myopia.hf import HFCausalLM, make_tiny

    model = HFCausalLM.from_pretrained(make_tiny(tmp_path / family, family)).double().eval()
    x = torch.randint(0, 200, (2, 9))
    hid = hidden_states(model, x)
    clean = model(x)
    for layer in range(len(hid)):
        seen = {}

        def record(h):
            seen["h"] = h
            return h

        assert torch.equal(edited_output(model, x, layer, record), clean)
        torch.testing.assert_close(seen["h"], hid[layer], rtol=0, atol=0)
    delta = torch.randn(hid[1].shape[-1], dtype=torch.float64)  # not constant: a norm would remove a constant shift
    out = edited_output(model, x, 1, at_positions(torch.tensor([4, 6]), lambda h: h + delta))
    assert torch.equal(out[0, :4], clean[0, :4]) and torch.equal(out[1, :6], clean[1, :6])
    assert not torch.allclose(out[0, 4:], clean[0, 4:])
