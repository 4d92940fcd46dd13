"""The fast myopic attention path equals the reference (materialised-score) path.

Values and every gradient, float64, for both detach variants, with and without a boolean
attention mask; at the attention level (q, k, v and the off-band k', v' as leaves) and for
the whole built-in GPT. The fast path has two CPU forms (materialised scores at short
contexts, :mod:`myopia.attention_short`; the fused flash kernel above), and every fast test
runs on both (the ``cpu_path`` fixture moves the threshold). Also: the CPU fused path saves
no more for backward than vanilla attention does, the short path no more than vanilla plus
the attention probabilities (the memory claims of the benchmark, checked without timing).
"""

from __future__ import annotations

import math

import pytest
import torch

from myopia import attention_short
from myopia.attention import myopic_attention_by_correction, policy_attention
from myopia.model import GPT, GPTConfig
from myopia.policy import GradientPolicy

B, NH, T, HS, C_IN = 2, 3, 9, 4, 5


@pytest.fixture(params=["short", "flash"])
def cpu_path(request, monkeypatch):
    """Run the test on one CPU form of the fast path: materialised scores (every T here is
    short) or the fused flash kernel (threshold 0)."""
    monkeypatch.setattr(attention_short, "SHORT_CONTEXT_MAX_T", 10**6 if request.param == "short" else 0)
    return request.param


def _mask(seed: int) -> torch.Tensor:
    """(B, 1, T, T) random bool mask: some diagonals masked, every row can read key 0."""
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(B, 1, T, T, generator=g) > 0.4
    m[..., 0] = True
    m[..., 3, 3] = False  # a query that may not read its own key
    return m


def _leaves(detach: str, dtype=torch.float64, seed: int = 0):
    """q, k, v from a live input; k', v' as the policy's detach variant makes them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C_IN, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(3, C_IN, NH * HS, generator=g, dtype=dtype, requires_grad=True)

    def heads(t):  # (B, T, nh*hs) -> (B, nh, T, hs)
        return t.view(B, T, NH, HS).transpose(1, 2)

    def build():
        q, k, v = (heads(x @ w[i]) for i in range(3))
        if detach == "kv":
            k_off, v_off = k.detach(), v.detach()
        else:  # recomputed from the detached input with the live projections
            k_off, v_off = heads(x.detach() @ w[1]), heads(x.detach() @ w[2])
        return q, k, v, k_off, v_off

    return x, w, build


def _run(fn, detach: str, mask, dtype=torch.float64, seed: int = 0):
    x, w, build = _leaves(detach, dtype, seed)
    q, k, v, k_off, v_off = build()
    out = fn(q, k, v, k_off, v_off, mask)
    g = torch.Generator().manual_seed(seed + 100)
    dout = torch.randn(out.shape, generator=g, dtype=dtype)
    gx, gw = torch.autograd.grad(out, (x, w), dout)
    return out.detach(), gx, gw


def _fast(q, k, v, k_off, v_off, mask, detach="kv"):
    pol = GradientPolicy(horizon=0, detach=detach)
    return policy_attention(q, k, v, pol, k_off=k_off, v_off=v_off, attn_mask=mask, impl="fast")


def _reference(q, k, v, k_off, v_off, mask, detach="kv"):
    pol = GradientPolicy(horizon=0, detach=detach)
    return policy_attention(q, k, v, pol, k_off=k_off, v_off=v_off, attn_mask=mask, impl="reference")


def _correction(q, k, v, k_off, v_off, mask):
    return myopic_attention_by_correction(q, k, v, k_off, v_off, attn_mask=mask, scale=1 / math.sqrt(HS))


def _assert_same(a, b, **tol):
    for x, y, name in zip(a, b, ("output", "d input", "d weights")):
        torch.testing.assert_close(x, y, msg=lambda m, name=name: f"{name}: {m}", **tol)


@pytest.mark.parametrize("masked", [False, True], ids=["causal", "bool_mask"])
def test_fast_myopic_equals_reference_kv(masked, cpu_path):
    mask = _mask(1) if masked else None
    _assert_same(_run(_fast, "kv", mask), _run(_reference, "kv", mask), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("masked", [False, True], ids=["causal", "bool_mask"])
def test_fast_myopic_equals_reference_hidden(masked, cpu_path):
    mask = _mask(2) if masked else None
    fast = _run(lambda *a: _fast(*a, detach="hidden"), "hidden", mask)
    ref = _run(lambda *a: _reference(*a, detach="hidden"), "hidden", mask)
    _assert_same(fast, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("detach", ["kv", "hidden"])
@pytest.mark.parametrize("masked", [False, True], ids=["causal", "bool_mask"])
def test_correction_term_path_equals_reference(detach, masked):
    """The device-independent formulation (used off CPU) is exact too."""
    mask = _mask(3) if masked else None
    ref = _run(lambda *a: _reference(*a, detach=detach), detach, mask)
    _assert_same(_run(_correction, detach, mask), ref, rtol=1e-10, atol=1e-12)


def test_fast_myopic_gradients_per_leaf_equal_reference(cpu_path):
    """dq, dk, dv, dk', dv' separately (not only their sums through shared weights)."""
    grads = {}
    for name, fn in (("fast", _fast), ("reference", _reference)):
        g = torch.Generator().manual_seed(5)
        leaves = [torch.randn(B, NH, T, HS, generator=g, dtype=torch.float64) for _ in range(3)]
        q, k, v = (t.requires_grad_() for t in leaves)
        k_off = k.detach().clone().requires_grad_()
        v_off = v.detach().clone().requires_grad_()
        out = fn(q, k, v, k_off, v_off, None, detach="hidden")
        grads[name] = torch.autograd.grad(out, (q, k, v, k_off, v_off), torch.ones_like(out))
    for a, b, name in zip(grads["fast"], grads["reference"], ("q", "k", "v", "k_off", "v_off")):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=lambda m, name=name: f"d{name}: {m}")


def test_fast_myopic_float32_close_to_reference(cpu_path):
    mask = _mask(4)
    fast = _run(_fast, "kv", mask, dtype=torch.float32)
    ref = _run(_reference, "kv", mask, dtype=torch.float32)
    _assert_same(fast, ref, rtol=1e-4, atol=1e-5)


def test_fast_myopic_forward_equals_vanilla(cpu_path):
    _, _, build = _leaves("kv")
    q, k, v, k_off, v_off = build()
    vanilla = policy_attention(q, k, v, GradientPolicy())
    torch.testing.assert_close(_fast(q, k, v, k_off, v_off, None), vanilla, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("detach", ["kv", "hidden"])
def test_fast_myopic_gpt_gradients_equal_reference(detach, cpu_path):
    """Every parameter gradient of the built-in GPT, fast vs reference path."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=12, vocab_size=11, n_layer=2, n_head=2, n_embd=8)).double()
    x = torch.randint(0, 11, (3, 12), generator=torch.Generator().manual_seed(1))
    pol = GradientPolicy(horizon=0, detach=detach)
    grads = {}
    for impl in ("fast", "reference"):
        model.zero_grad(set_to_none=True)
        logits = model(x, policy=pol, impl=impl)
        torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), x[:, 1:].reshape(-1)).backward()
        grads[impl] = {n: p.grad.clone() for n, p in model.named_parameters()}
    for name, g in grads["fast"].items():
        torch.testing.assert_close(g, grads["reference"][name], rtol=1e-9, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")


def _saved_bytes(fn) -> int:
    """Bytes of distinct storages that autograd keeps for backward while fn runs."""
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(storages.values())


def _saved_vanilla_and_fast(T: int) -> tuple[int, int]:
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=T, vocab_size=32, n_layer=2, n_head=4, n_embd=32))
    x = torch.randint(0, 32, (2, T))
    vanilla = _saved_bytes(lambda: model(x, policy=GradientPolicy()))
    fast = _saved_bytes(lambda: model(x, policy=GradientPolicy(horizon=0), impl="fast"))
    return vanilla, fast


def test_fast_myopic_saves_no_more_than_vanilla():
    T = attention_short.SHORT_CONTEXT_MAX_T + 16  # the fused path
    vanilla, fast = _saved_vanilla_and_fast(T)
    assert fast <= vanilla, f"fast myopic path saves {fast} bytes for backward, vanilla {vanilla}"


def test_short_context_path_saves_vanilla_plus_probabilities_at_most():
    T = attention_short.SHORT_CONTEXT_MAX_T
    vanilla, fast = _saved_vanilla_and_fast(T)
    probs = 2 * (2 * 4 * T * T) * 4  # layers * (B * nh * T * T) float32 probabilities
    assert fast <= vanilla + probs, f"short path saves {fast} bytes for backward, vanilla {vanilla} + P {probs}"
