"""Every gradient policy of the built-in GPT equals its brute-force definition (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from myopia import GPT, GPTConfig, GradientPolicy
from oracles import combine, loop_gradient, per_position_jacobian

T = 6


def token_model(n_layer=2, seed=0):
    torch.manual_seed(seed)
    m = GPT(GPTConfig(block_size=T, vocab_size=11, n_layer=n_layer, n_head=2, n_embd=8)).double()
    # non-trivial weights: GPT-2's small init makes off-diagonal terms tiny
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m


def regression_model(n_layer=2, seed=0):
    torch.manual_seed(seed)
    m = GPT(GPTConfig(block_size=T, n_in=2, n_out=1, n_layer=n_layer, n_head=2, n_embd=8)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m


def token_data(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 11, (3, T), generator=g)
    y = torch.randint(0, 11, (3, T), generator=g)
    return x, lambda out: F.cross_entropy(out.transpose(1, 2), y, reduction="none")


def regression_data(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, T, 2, generator=g, dtype=torch.float64)
    y = torch.randn(3, T, 1, generator=g, dtype=torch.float64)
    return x, lambda out: ((out - y) ** 2).sum(-1)


def model_grad(model, x, loss_fn, policy, impl="auto"):
    model.zero_grad(set_to_none=True)
    loss_fn(model(x, policy=policy, impl=impl)).mean().backward()
    g = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return g


def assert_grads_equal(got, want, tol=1e-10):
    assert got.keys() == want.keys()
    for n in got:
        err = (got[n] - want[n]).abs().max().item()
        scale = want[n].abs().max().item() + 1e-12
        assert err <= tol * max(1.0, scale), f"{n}: max abs error {err:.3e} (scale {scale:.3e})"


MODELS = {"tokens": (token_model, token_data), "regression": (regression_model, regression_data)}


@pytest.fixture(scope="module", params=list(MODELS))
def setup(request):
    make_model, make_data = MODELS[request.param]
    model = make_model()
    x, loss_fn = make_data()
    M = per_position_jacobian(model, x, loss_fn)
    return model, x, loss_fn, M


@pytest.mark.parametrize("impl", ["reference", "auto"])
def test_vanilla_gradient_equals_sum_over_all_position_pairs(setup, impl):
    model, x, loss_fn, M = setup
    assert_grads_equal(model_grad(model, x, loss_fn, GradientPolicy(), impl), combine(M, lambda j, i: i <= j))


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_myopic_gradient_equals_bruteforce_diagonal_G0(setup, impl):
    model, x, loss_fn, M = setup
    got = model_grad(model, x, loss_fn, GradientPolicy(horizon=0), impl)
    assert_grads_equal(got, combine(M, lambda j, i: i == j))


def test_off_diagonal_gradient_is_not_zero(setup):
    """vanilla - myopic = sum_{tau >= 1} G(tau) is a real, sizeable part of the gradient."""
    model, x, loss_fn, M = setup
    van = model_grad(model, x, loss_fn, GradientPolicy())
    myo = model_grad(model, x, loss_fn, GradientPolicy(horizon=0))
    diff = torch.sqrt(sum(((van[n] - myo[n]) ** 2).sum() for n in van))
    total = torch.sqrt(sum((van[n] ** 2).sum() for n in van))
    assert diff > 0.05 * total
    # and the part that differs includes W_K/W_V of the first layer
    C = model.config.n_embd
    w = "transformer.h.0.attn.c_attn.weight"
    assert (van[w][C:] - myo[w][C:]).abs().max() > 1e-6


@pytest.mark.parametrize("block", [1, 2, 3, T])
def test_block_horizon_equals_same_block_position_pairs(setup, block):
    model, x, loss_fn, M = setup
    got = model_grad(model, x, loss_fn, GradientPolicy(block=block))
    assert_grads_equal(got, combine(M, lambda j, i: i <= j and j // block == i // block))


@pytest.mark.parametrize("h", [1, 2])
def test_band_horizon_in_one_layer_equals_position_pairs_within_h(h):
    model = token_model(n_layer=1)
    x, loss_fn = token_data()
    M = per_position_jacobian(model, x, loss_fn)
    got = model_grad(model, x, loss_fn, GradientPolicy(horizon=h))
    assert_grads_equal(got, combine(M, lambda j, i: 0 <= j - i <= h))


def test_band_horizon_is_per_hop_in_two_layers():
    """With 2 layers, horizon 1 is not a band over position pairs: the loss at j reaches
    position j-2 through two live hops (partly), so the gradient equals neither the pairs
    with j - i <= 1 nor those with j - i <= 2. (Its exact definition, per hop, is checked
    against the per-query loop oracle below.)"""
    model = token_model(n_layer=2)
    x, loss_fn = token_data()
    M = per_position_jacobian(model, x, loss_fn)
    got = model_grad(model, x, loss_fn, GradientPolicy(horizon=1))
    for reach in (1, 2):
        pairwise = combine(M, lambda j, i: 0 <= j - i <= reach)
        assert max((got[n] - pairwise[n]).abs().max().item() for n in got) > 1e-6, reach


@pytest.mark.parametrize("policy", [GradientPolicy(horizon=1), GradientPolicy(horizon=2), GradientPolicy(horizon=0, detach="hidden"),
                                    GradientPolicy(horizon=1, detach="hidden"), GradientPolicy(block=2, detach="hidden")])
@pytest.mark.parametrize("impl", ["reference", "auto"])
def test_policy_gradient_equals_per_query_loop_oracle(policy, impl):
    model = regression_model(n_layer=2)
    x, loss_fn = regression_data()
    if policy.horizon is not None:
        live = lambda j, i: j - i <= policy.horizon  # noqa: E731
    else:
        live = lambda j, i: j // policy.block == i // policy.block  # noqa: E731
    want = loop_gradient(model, x, loss_fn, live, policy.detach)
    assert_grads_equal(model_grad(model, x, loss_fn, policy, impl), want)


def test_hidden_variant_differs_from_strict_only_in_key_value_weights(setup):
    model, x, loss_fn, M = setup
    kv = model_grad(model, x, loss_fn, GradientPolicy(horizon=0, detach="kv"))
    hidden = model_grad(model, x, loss_fn, GradientPolicy(horizon=0, detach="hidden"))
    C = model.config.n_embd
    for n in kv:
        if n.endswith("attn.c_attn.weight") or n.endswith("attn.c_attn.bias"):
            assert torch.allclose(kv[n][:C], hidden[n][:C], atol=1e-12), n  # W_Q identical
            assert (kv[n][C:] - hidden[n][C:]).abs().max() > 1e-8, n  # W_K/W_V learn from later losses
        else:
            assert torch.allclose(kv[n], hidden[n], atol=1e-12), n


@pytest.mark.parametrize("policy", [GradientPolicy(), GradientPolicy(horizon=0), GradientPolicy(horizon=2),
                                    GradientPolicy(block=3), GradientPolicy(horizon=0, detach="hidden")])
def test_forward_values_identical_under_every_policy(policy):
    model = token_model()
    x, _ = token_data()
    ref = model(x)
    for impl in ("reference", "auto"):
        assert torch.allclose(model(x, policy=policy, impl=impl), ref, atol=1e-12)


def test_fast_path_equals_reference_in_values_and_gradients_float32():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=50, n_layer=2, n_head=4, n_embd=32))
    x = torch.randint(0, 50, (4, 32))
    y = torch.randint(0, 50, (4, 32))
    loss_fn = lambda out: F.cross_entropy(out.transpose(1, 2), y, reduction="none")  # noqa: E731
    for detach in ("kv", "hidden"):
        pol = GradientPolicy(horizon=0, detach=detach)
        a = model_grad(model, x, loss_fn, pol, "reference")
        b = model_grad(model, x, loss_fn, pol, "fast")
        for n in a:
            assert torch.allclose(a[n], b[n], atol=1e-6, rtol=1e-4), n


@pytest.mark.parametrize("policy", [GradientPolicy(), GradientPolicy(horizon=0), GradientPolicy(horizon=0, detach="hidden")])
def test_left_padded_rows_that_read_nothing_give_no_nan_and_paths_agree(policy):
    """Queries that may read no key at all (left padding) must not poison the gradient."""
    from myopia import policy_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 6, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool).tril()
    mask[0, ..., :2] = False  # sequence 0 has two padding positions
    grads = []
    for impl in ("reference", "auto"):
        out = policy_attention(q, k, v, policy, attn_mask=mask, impl=impl)
        out[0, :, 2:].sum().add(out[1].sum()).backward()  # loss only on real positions
        grads.append([t.grad.clone() for t in (q, k, v)])
        for t in (q, k, v):
            assert not torch.isnan(t.grad).any()
            t.grad = None
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-12)
