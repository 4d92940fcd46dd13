"""Strict myopic attention through the Triton kernels (``myopia.attention_triton``).

On CPU the kernels run under Triton's interpreter. Triton reads ``TRITON_INTERPRET`` when a
kernel is defined (at import), so the interpreted cases run in one child process started
with the variable set (the ``interpreted_errors`` fixture); this process, and every other
test, never sees it. The child compares the Triton forward and dQ-only backward with the
float64 reference (``reference_attention`` under horizon 0, ``detach="kv"``) on the same
rounded inputs and reports the errors ``max|X - X_ref| / max|X_ref|``
(``precision.relative_error``); the tests here assert them:

* float32: at most 1e-5 (float32 rounding of a few hundred products, far below what any
  wrong term would give: a missing diagonal or off-by-one key is an O(1) error);
* bfloat16/float16: at most 2 eps of the dtype (``torch.finfo``: 2^-7, 2^-10). Like flash
  attention on a GPU, the kernels round P and dS to the input dtype before their matrix
  products; that rounding is the error (measured 0.2-1.4 eps here). torch's CPU kernel
  keeps P and dS in float32 and in bfloat16 has about half this error, so it is no bound
  for a GPU-style kernel (test_attention_precision.py bounds the CPU paths by it).

Inputs are rounded to the case's dtype first and the reference runs on the rounded values,
so the error is the computation's, not the inputs' rounding.

Small tiles (BLOCK_M=32, BLOCK_N=16) make T = 33 and 64 run every branch of the kernels:
full key tiles below the query block, the causal tiles of the diagonal block, partial tiles
at T. The child also runs the built-in GPT and a tiny Llama in float32 with every attention
layer on the Triton path (the dispatch forced to it), logits and every parameter gradient
within twice the vanilla model's error against the float64 reference. Both kernels are
compiled for sm_90 without a GPU. On CUDA (skipped without a GPU) the path runs inside the
built-in GPT and a tiny Hugging Face model against float64 reference gradients, and
``myopic_fast_attention`` is checked to pick it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import myopia.attention as attention
from myopia.attention import myopic_path, reference_attention
from myopia.policy import GradientPolicy
from precision import model_errors, relative_error, small_gpt

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install 'myopia[triton]')")
needs_cuda = pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason="needs a CUDA GPU and triton")

B, NH = 2, 2
TILES = (32, 16)
# (dtype, T, hs, tiles): None = the kernels' own first configuration (what the interpreter runs by default)
CASES = {
    **{f"fp32-T{T}-d{hs}": ("float32", T, hs, TILES) for T in (1, 7, 33, 64) for hs in (16, 32)},
    "fp32-T64-d32-default_tiles": ("float32", 64, 32, None),
    "fp32-T33-d128": ("float32", 33, 128, TILES),
    **{f"{dt}-T{T}-d32": (dt, T, 32, TILES) for dt in ("bf16", "fp16") for T in (33, 64)},
}
DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TENSORS = ("out", "dq", "dk", "dv")
MODEL_T = 40
FP32_TOL = 1e-5
LOW_EPS = 2


def _inputs(dtype, T, hs, seed=0):
    """q, k, v, dout (B, NH, T, hs) rounded to ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, NH, T, hs, generator=g, dtype=torch.float64).to(dtype) for _ in range(4)]


def _grads(fn, dtype, T, hs, rounded):
    """(out, dq, dk, dv) of fn(q, k, v, scale) on the inputs rounded to ``rounded``, computed in ``dtype``."""
    q, k, v, dout = (t.to(dtype) for t in _inputs(rounded, T, hs))
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    out = fn(q, k, v, 1 / math.sqrt(hs))
    return (out, *torch.autograd.grad(out, (q, k, v), dout))


def _reference(policy):
    def fn(q, k, v, scale):
        return reference_attention(q, k, v, policy, k_off=k.detach(), v_off=v.detach(), scale=scale)

    return fn


def _case_errors(dtype_name, T, hs, tiles) -> dict:
    """Child process only (TRITON_INTERPRET=1): errors of the Triton path, and of vanilla attention."""
    from myopia import attention_triton

    dtype = DTYPES[dtype_name]

    def triton_path(q, k, v, scale):
        return attention_triton.myopic_attention(q, k, v, scale, forward="triton", blocks=tiles)

    got = _grads(triton_path, dtype, T, hs, dtype)
    want = _grads(_reference(GradientPolicy(horizon=0, detach="kv")), torch.float64, T, hs, dtype)
    return {"errors": [relative_error(a, b) for a, b in zip(got, want)], "dtypes": [str(t.dtype) for t in got]}


def _model_cases() -> dict:
    """Child process only: the built-in GPT and a tiny Llama in float32 on CPU, strictly myopic
    with every attention layer on the Triton path (the dispatch forced to it: on CPU it
    picks the CPU paths), errors against the float64 reference and the vanilla model's."""
    import tempfile

    from myopia import attention_triton

    calls = []
    real = attention_triton.myopic_attention
    attention.myopic_path = lambda *args: "triton"
    attention_triton.myopic_attention = lambda *a, **kw: calls.append(1) or real(*a, **kw)
    policy = GradientPolicy(horizon=0, detach="kv")
    out = {}
    gpt, x = small_gpt(MODEL_T)
    out["gpt"] = [*model_errors(gpt, x, policy), len(calls)]
    calls.clear()
    with tempfile.TemporaryDirectory() as root:
        lm, x = _llama(Path(root), torch.float32, "cpu", MODEL_T)
        out["llama"] = [*model_errors(lm, x, policy), len(calls)]
    return out


def _child_main() -> None:
    torch.set_num_threads(1)
    out = {name: _case_errors(*case) for name, case in CASES.items()}
    print(json.dumps({"cases": out, "models": _model_cases()}))


@pytest.fixture(scope="module")
def interpreted_errors() -> dict:
    """Run every case of :data:`CASES` once, in a child process under Triton's interpreter."""
    here = Path(__file__).resolve()
    src = str(here.parents[1] / "src")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join([src, str(here.parent)]))
    code = f"import {here.stem} as t; t._child_main()"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@needs_triton
@pytest.mark.parametrize("case", CASES)
def test_interpreted_triton_path_matches_float64_reference(interpreted_errors, case):
    res = interpreted_errors["cases"][case]
    dtype_name = CASES[case][0]
    assert res["dtypes"] == [str(DTYPES[dtype_name])] * 4  # output and gradients keep the input's dtype
    for i, name in enumerate(TENSORS):
        err = res["errors"][i]
        bound = FP32_TOL if dtype_name == "float32" else LOW_EPS * torch.finfo(DTYPES[dtype_name]).eps
        assert err <= bound, f"{name}: error {err:.2e} > {bound:.2e}"


@needs_triton
@pytest.mark.parametrize("model", ["gpt", "llama"])
def test_interpreted_triton_path_in_models_matches_float64_reference(interpreted_errors, model):
    """Logits and every parameter gradient of the myopic model with its attention on the
    Triton path (2 layers: 2 calls) within twice the vanilla model's float32 error."""
    err_myopic, err_vanilla, calls = interpreted_errors["models"][model]
    assert calls == 2, "the Triton path did not serve every attention layer"
    assert err_myopic <= 2 * err_vanilla + 1e-6, f"myopic {err_myopic:.2e} vs vanilla {err_vanilla:.2e}"


@needs_triton
def test_unsupported_inputs_are_refused_with_the_reason():
    from myopia import attention_triton

    q = torch.zeros(1, 1, 4, 32)
    assert not attention_triton.serves(q, q, q, None)  # CPU tensors: the CPU paths, unchanged
    assert "CUDA" in attention_triton.unsupported(q)
    with pytest.raises(ValueError, match="CUDA"):
        attention_triton.myopic_attention(q, q, q, 1.0)
    assert myopic_path(q, q, q, None) == "short"
    assert myopic_path(torch.zeros(1, 1, 128, 32), q, q, None) == "flash_cpu"


@needs_triton
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
@pytest.mark.parametrize("name", ["forward", "backward"])
def test_kernels_compile_for_a_hopper_gpu(name, dtype):
    """The interpreter runs the kernels' Python; this compiles them for sm_90 (H100/H200)
    down to a cubin, without a GPU (Triton's bundled ptxas), with the first tile
    configuration the autotuner tries: code the interpreter accepts but the compiler
    rejects fails here. Strides of the head dimension are 1, as the JIT specialises them."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from myopia import attention_triton

    kernel = {"forward": attention_triton._forward_kernel, "backward": attention_triton._dq_kernel}[name]
    n_tensors = {"forward": 4, "backward": 8}[name]  # then LSE, then four strides per tensor
    bm, bn, warps, stages = attention_triton._CONFIGS[name, "float32" if dtype == "fp32" else "16-bit"][0]
    constants = {"HEAD_DIM": 64, "BLOCK_M": bm, "BLOCK_N": bn, "DOT": "ieee" if dtype == "fp32" else "native"}
    signature = {}
    for i, arg in enumerate(kernel.arg_names):
        if i < n_tensors:
            signature[arg] = "*" + dtype
        elif i == n_tensors:
            signature[arg] = "*fp32"
        elif arg == "scale":
            signature[arg] = "fp32"
        elif arg in constants or (i - n_tensors) % 4 == 0:
            signature[arg] = "constexpr"  # the constexprs, and every fourth stride (head dim) = 1
            constants.setdefault(arg, 1)
        else:
            signature[arg] = "i32"
    compiled = triton.compile(ASTSource(kernel, signature, constexprs=constants), target=GPUTarget("cuda", 90, 32),
                              options={"num_warps": warps, "num_stages": stages, **attention_triton._OPTIONS})
    assert compiled.asm["cubin"] and 0 < compiled.metadata.shared <= 227 * 1024  # sm_90's shared memory per block


# ---------------------------------------------------------------------------- CUDA
def _no_correction(*args, **kwargs):
    raise AssertionError("the correction path ran where the Triton path should have")


@needs_cuda
def test_myopic_fast_attention_picks_triton_on_cuda(monkeypatch):
    from myopia import attention_triton

    q = torch.randn(2, 2, 100, 32, device="cuda")
    k, v = torch.randn_like(q), torch.randn_like(q)
    assert myopic_path(q, k, v, None) == "triton"
    assert myopic_path(q, k, v, torch.ones(1, 1, 100, 100, dtype=torch.bool, device="cuda")) == "correction"
    assert myopic_path(q, k.requires_grad_(), v, None) == "correction"  # detach="hidden": dK' needed
    assert myopic_path(torch.randn(2, 2, 100, 24, device="cuda"), k, v, None) == "correction"  # head size
    calls = []
    monkeypatch.setattr(attention, "myopic_attention_by_correction", _no_correction)
    monkeypatch.setattr(attention_triton, "myopic_attention", lambda *a, **kw: calls.append(1) or a[0])
    attention.policy_attention(q, k.detach(), v, GradientPolicy(horizon=0), impl="fast")
    assert calls == [1]


def _llama(root: Path, dtype: torch.dtype, device: str, T: int):
    """A tiny local Llama (grouped-query heads: 4 query heads of size 16 on 2 key/value
    heads; rotary) as an HFCausalLM, and a batch x (2, T) of its tokens."""
    import myopia.hf as mhf

    path = mhf.make_tiny(root / "llama", family="llama")
    lm = mhf.HFCausalLM(mhf.load(path, dtype=dtype, device=device)[0]).eval()
    return lm, torch.randint(0, 256, (2, T), generator=torch.Generator().manual_seed(1))


@needs_cuda
@pytest.mark.parametrize("forward", ["auto", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_cuda_triton_path_in_gpt_matches_float64_reference(dtype, forward, monkeypatch):
    """The built-in GPT on CUDA, strictly myopic through the Triton path (the correction path
    is made to fail): logits and every parameter gradient against the float64 reference
    path on CPU, within twice the error of the vanilla GPT in the same dtype on the same GPU."""
    from myopia import attention_triton

    if forward == "triton":  # the Triton forward too (auto runs torch's fused forward on CUDA)
        real = attention_triton.myopic_attention
        monkeypatch.setattr(attention_triton, "myopic_attention", lambda q, k, v, s: real(q, k, v, s, forward="triton"))
    monkeypatch.setattr(attention, "myopic_attention_by_correction", _no_correction)
    model, x = small_gpt(100)  # T = 100: not a multiple of any tile, partial tiles at the end
    err_myopic, err_vanilla = model_errors(model.to("cuda", dtype), x, GradientPolicy(horizon=0, detach="kv"))
    assert err_myopic <= 2 * err_vanilla + 1e-6, f"myopic {err_myopic:.2e} vs vanilla {err_vanilla:.2e}"


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_cuda_triton_path_in_hf_model_matches_float64_reference(dtype, tmp_path, monkeypatch):
    """A tiny local Llama on CUDA through the Triton path: logits and parameter gradients
    against the float64 reference on CPU, within twice the vanilla model's error in the same dtype."""
    from myopia import attention_triton

    calls = []
    real = attention_triton.myopic_attention
    monkeypatch.setattr(attention_triton, "myopic_attention", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    monkeypatch.setattr(attention, "myopic_attention_by_correction", _no_correction)
    lm, x = _llama(tmp_path, dtype, "cuda", T=80)
    err_myopic, err_vanilla = model_errors(lm, x, GradientPolicy(horizon=0, detach="kv"))
    assert calls, "the Triton path did not run"
    assert err_myopic <= 2 * err_vanilla + 1e-6, f"myopic {err_myopic:.2e} vs vanilla {err_vanilla:.2e}"
