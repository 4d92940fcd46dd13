"""Offset decomposition G(tau) = sum_i dL_{i+tau}/dtheta_i checked against brute force.

The brute force below gives every position t its own copy theta_t of every parameter of a
tiny GPT (a functional forward written here, independent of the model code) and does one
backward per loss position j, which yields the full matrix M[j, i] = dL_j/dtheta_i.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from myopia import GPT, GPTConfig, GradientPolicy, TrainConfig, make_task, train
from myopia.gradients import (
    context_length_shares,
    gradient_split,
    offset_gradients,
    offset_profile,
    parameter_groups,
    summarize_profile,
)

T, V, B = 6, 11, 3


def ce_loss(out, y):
    return F.cross_entropy(out.transpose(1, 2), y, reduction="none")  # (B, T)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=T, vocab_size=V, n_layer=2, n_head=2, n_embd=8)).double()
    with torch.no_grad():  # non-trivial norms and biases, so no term vanishes by initialisation
        for n, p in model.named_parameters():
            p.add_(0.3 * torch.randn_like(p))
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, V, (B, T), generator=g)
    y = torch.randint(0, V, (B, T), generator=g)
    return model, x, y, per_position_jacobian(model, x, y)


# ------------------------------------------------------------------ brute force
def _lin(x, W, b):  # x (B, T, in), W (T, out, in), b (T, out): position t uses copy t
    return torch.einsum("bti,toi->bto", x, W) + b


def _ln(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def per_position_forward(P, x, cfg):
    Bn, Tn = x.shape
    C, nh = cfg.n_embd, cfg.n_head
    hs = C // nh
    t = torch.arange(Tn)
    h = P["transformer.wte.weight"][t.expand(Bn, Tn), x] + P["transformer.wpe.weight"][t, t]
    for layer in range(cfg.n_layer):
        pre = f"transformer.h.{layer}."
        a = _ln(h, P[pre + "ln_1.weight"], P[pre + "ln_1.bias"])
        q, k, v = _lin(a, P[pre + "attn.c_attn.weight"], P[pre + "attn.c_attn.bias"]).split(C, dim=2)
        q, k, v = (z.reshape(Bn, Tn, nh, hs).transpose(1, 2) for z in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        s = s.masked_fill(torch.ones(Tn, Tn).triu(1).bool(), float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(Bn, Tn, C)
        h = h + _lin(o, P[pre + "attn.c_proj.weight"], P[pre + "attn.c_proj.bias"])
        m = _ln(h, P[pre + "ln_2.weight"], P[pre + "ln_2.bias"])
        m = _lin(m, P[pre + "mlp.c_fc.weight"], P[pre + "mlp.c_fc.bias"])
        m = 0.5 * m * (1 + torch.erf(m / math.sqrt(2)))
        h = h + _lin(m, P[pre + "mlp.c_proj.weight"], P[pre + "mlp.c_proj.bias"])
    h = _ln(h, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"])
    return torch.einsum("bti,toi->bto", h, P["lm_head.weight"])


def per_position_jacobian(model, x, y):
    """name -> (T_j, T_i, *shape): dL_j/dtheta_i with L_j = sum_b loss[b, j] / (B T)."""
    Bn, Tn = x.shape
    P = {n: p.detach().expand(Tn, *p.shape).clone().requires_grad_(True) for n, p in model.named_parameters()}
    loss = ce_loss(per_position_forward(P, x, model.config), y)
    M = {n: torch.zeros(Tn, *P[n].shape, dtype=torch.float64) for n in P}
    for j in range(Tn):
        grads = torch.autograd.grad(loss[:, j].sum() / (Bn * Tn), list(P.values()), retain_graph=True, allow_unused=True)
        for n, g in zip(P, grads):
            if g is not None:
                M[n][j] = g
    return M


def offset_bin(M, lo, hi=None, js=None):
    """sum over loss positions j (all, or js) and i with lo <= j - i <= hi of dL_j/dtheta_i."""
    out = {}
    for n, m in M.items():
        Tn = m.shape[0]
        acc = torch.zeros(m.shape[2:], dtype=m.dtype)
        for j in js if js is not None else range(Tn):
            for i in range(j + 1):
                if j - i >= lo and (hi is None or j - i <= hi):
                    acc += m[j, i]
        out[n] = acc
    return out


def assert_close(a: dict, b: dict):
    for n in b:
        torch.testing.assert_close(a[n], b[n], rtol=1e-9, atol=1e-12, msg=lambda s: f"{n}: {s}")


# ------------------------------------------------------------------ claims
def test_bruteforce_functional_forward_reproduces_the_model(setup):
    model, x, y, M = setup
    vanilla = gradient_split(model, (x, y), ce_loss).vanilla
    assert_close(offset_bin(M, 0), vanilla)


@pytest.mark.parametrize("K", [2, T - 1])
def test_offset_profile_equals_per_position_copies_bruteforce(setup, K):
    model, x, y, M = setup
    prof = offset_profile(model, (x, y), ce_loss, max_offset=K)
    assert prof.max_offset == K and len(prof.bins) == K + 2
    for tau in range(K + 1):
        assert_close(prof.bins[tau], offset_bin(M, tau, tau))
    assert_close(prof.bins[K + 1], offset_bin(M, K + 1))  # tau > K
    assert max(float(t.abs().max()) for t in prof.bins[2].values()) > 1e-4  # the bins are not trivially zero


def test_offsets_sum_to_vanilla_and_offset_zero_is_the_myopic_gradient(setup):
    model, x, y, M = setup
    split = gradient_split(model, (x, y), ce_loss)
    prof = offset_profile(model, (x, y), ce_loss, max_offset=3)
    assert_close({n: sum(b[n] for b in prof.bins) for n in split.vanilla}, split.vanilla)
    assert_close(prof.bins[0], split.myopic)
    assert_close(split.myopic, offset_bin(M, 0, 0))  # the myopic policy's gradient is the diagonal
    assert_close(split.future, offset_bin(M, 1))


def test_sampled_profile_is_the_horvitz_thompson_estimate_with_its_variance(setup):
    model, x, y, M = setup
    split = gradient_split(model, (x, y), ce_loss)
    parts = parameter_groups(model)
    S = 3
    prof = offset_profile(model, (x, y), ce_loss, max_offset=2, positions=S, seed=5, reference=split.vanilla, parts=parts)
    J = prof.positions
    assert len(J) == S and J == sorted(set(J)) and prof.sampled
    assert offset_profile(model, (x, y), ce_loss, max_offset=2, positions=S, seed=5).positions == J  # seeded
    for tau in range(3):
        est = {n: t * (T / S) for n, t in offset_bin(M, tau, tau, js=J).items()}
        assert_close(prof.bins[tau], est)
    # share of W_K at tau = 1: estimate and standard error from the brute-force per-position terms
    summary = summarize_profile(prof, split.vanilla, parts)["h0.W_K"]
    wk = [p for p in parts if p.group == "h0.W_K"]  # rows C..2C of c_attn's weight and bias

    def flat(grads):
        return torch.cat([p.view(grads[p.name]).reshape(-1) for p in wk])

    ref = flat(split.vanilla)
    terms = [float(flat({n: m[j, j - 1] for n, m in M.items()}) @ ref) / float(ref @ ref) if j >= 1 else 0.0 for j in J]
    mean = sum(terms) / S
    se = math.sqrt(T * T * (1 - S / T) / S * sum((t - mean) ** 2 for t in terms) / (S - 1))
    assert summary["share"][1] == pytest.approx(T / S * sum(terms), rel=1e-9)
    assert summary["share_se"][1] == pytest.approx(se, rel=1e-9)
    assert se > 0


def test_shares_add_up_to_one_and_fused_attention_is_split_into_q_k_v(setup):
    model, x, y, _ = setup
    res = offset_gradients(model, (x, y), ce_loss, max_offset=2)
    C = model.config.n_embd
    qkv = [p for p in parameter_groups(model) if p.name == "transformer.h.1.attn.c_attn.weight"]
    assert [(p.group, p.start, p.stop) for p in qkv] == [("h1.W_Q", 0, C), ("h1.W_K", C, 2 * C), ("h1.W_V", 2 * C, 3 * C)]
    for g, s in res.split.items():
        assert s["myopic_share"] + s["future_share"] == pytest.approx(1.0, abs=1e-9), g
        assert sum(res.profile[g]["share"]) == pytest.approx(1.0, abs=1e-9), g
    assert res.profile_check["sum_vs_vanilla"] < 1e-10 and res.profile_check["g0_vs_myopic"] < 1e-10
    assert res.offsets == ["0", "1", "2", ">2"] and not res.sampled


def test_last_layer_query_output_and_mlp_get_no_future_gradient_but_keys_values_do(setup):
    model, x, y, _ = setup
    s = offset_gradients(model, (x, y), ce_loss, profile=False).split
    for g in ("h1.W_Q", "h1.W_O", "h1.MLP", "head"):
        assert s[g]["future_sq_norm"] < 1e-20 * s[g]["vanilla_sq_norm"], g
    for g in ("h1.W_K", "h1.W_V", "h0.W_Q", "embeddings"):
        assert s[g]["future_sq_norm"] > 1e-4 * s[g]["vanilla_sq_norm"], g


def test_context_length_rows_use_prefixes_and_reject_lengths_beyond_the_sequence(setup):
    model, x, y, _ = setup
    rows = context_length_shares(model, (x, y), ce_loss, [2, T])
    full = offset_gradients(model, (x, y), ce_loss, profile=False).split["all:W_K+W_V"]
    assert [r["N"] for r in rows] == [2, T]
    assert rows[1]["kv_future_share"] == pytest.approx(full["future_share"], rel=1e-12)
    assert rows[0]["uniform_reading_prediction"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="longer than the sequences"):
        context_length_shares(model, (x, y), ce_loss, [T + 1])


class _ToyConv1DModel(nn.Module):
    """Embedding -> HF Conv1D -> causal running mean -> RMSNorm -> Linear (generic modules)."""

    def __init__(self):
        super().__init__()
        from transformers.pytorch_utils import Conv1D

        self.embed = nn.Embedding(V, 8)
        self.proj = Conv1D(8, 8)
        self.norm = nn.RMSNorm(8)
        self.head = nn.Linear(8, V)

    def forward(self, x, policy=None):
        h = self.proj(self.embed(x))  # (B, T, 8)
        h = h.cumsum(1) / torch.arange(1, x.shape[1] + 1, dtype=h.dtype).view(1, -1, 1)
        return self.head(self.norm(h))


def test_profile_hooks_cover_conv1d_rmsnorm_and_explain_all_of_autograds_gradient(setup):
    _, x, y, _ = setup
    torch.manual_seed(0)
    model = _ToyConv1DModel().double()
    with torch.no_grad():
        model.norm.weight.add_(torch.randn(8, dtype=torch.float64))
    prof = offset_profile(model, (x, y), ce_loss, max_offset=T - 1)  # verify=True checks position 0
    for n, t in prof.bins[-1].items():  # with K = T - 1 every pair is in an explicit bin: nothing is left
        assert float(t.abs().max()) < 1e-12, n
    assert float(prof.bins[2]["proj.weight"].abs().max()) > 1e-6


def test_bad_input_gets_one_clear_error(setup):
    model, x, y, _ = setup
    with pytest.raises(ValueError, match="max_offset K must be an integer >= 0"):
        offset_gradients(model, (x, y), ce_loss, max_offset=-1)
    with pytest.raises(ValueError, match=f"cannot sample 7 loss positions from a sequence of {T}"):
        offset_gradients(model, (x, y), ce_loss, positions=7)

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model
            self.gain = nn.Parameter(torch.ones((), dtype=torch.float64))

        def forward(self, x, policy=None):
            return self.inner(x, policy=policy) * self.gain

    with pytest.raises(ValueError, match="Scaled module, which the per-position split does not cover"):
        offset_profile(Scaled(), (x, y), ce_loss)


def test_training_logs_myopic_and_future_gradient_norms_every_k_steps(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, n_in=2, n_out=1, n_layer=1, n_head=2, n_embd=16))
    cfg = TrainConfig(steps=6, batch_size=4, eval_every=6, eval_batches=1, test_batches=1, track_gradients_every=3)
    res = train(model, make_task("precache"), GradientPolicy(), cfg, out_dir=tmp_path, progress=False)
    rows = [r for r in res.curve if "grad_myopic_norm" in r]
    assert [r["step"] for r in rows] == [3, 6]
    for r in rows:
        v, m, f, c = r["grad_vanilla_norm"], r["grad_myopic_norm"], r["grad_future_norm"], r["grad_cos_myopic_future"]
        assert v**2 == pytest.approx(m**2 + f**2 + 2 * c * m * f, rel=1e-3)  # V = G(0) + future
        assert f > 0 and -1 <= c <= 1


# ------------------------------------------------------------------ the command
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16"]


def _save_tiny_checkpoint(path, n_embd=16):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, n_in=2, n_out=1, n_layer=1, n_head=2, n_embd=n_embd))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_decompose_command_writes_shares_profile_and_context_table(tmp_path, capsys):
    from myopia.cli import main

    ckpt = _save_tiny_checkpoint(tmp_path / "model.safetensors")
    out = tmp_path / "out"
    argv = ["decompose", "--checkpoint", str(ckpt), *TINY, "--context-lengths", "4,16", "--max-offset", "3",
            "--positions", "5", "--eval-batch-size", "4", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    data = __import__("json").loads((out / "results.json").read_text())
    assert {"h0.W_Q", "h0.W_K", "h0.W_V", "h0.W_O", "h0.MLP", "h0.norms", "embeddings", "head"} <= set(data["split"])
    kv = data["split"]["all:W_K+W_V"]
    assert kv["myopic_share"] + kv["future_share"] == pytest.approx(1.0, abs=1e-5)
    assert data["offsets"] == ["0", "1", "2", "3", ">3"] and len(data["positions"]) == 5 and data["sampled"]
    assert len(data["profile"]["total"]["share_se"]) == 5
    assert [r["N"] for r in data["context_lengths"]] == [4, 16]
    assert (out / "decompose.png").exists() and (out / "context_lengths.png").exists()
    assert "future share of the key/value gradient vs context length" in capsys.readouterr().out


def test_decompose_rejects_missing_or_mismatched_checkpoint_and_oversized_sample(tmp_path, capsys):
    from myopia.cli import main

    assert main(["decompose", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "a")]) == 2
    assert "checkpoint" in capsys.readouterr().err and not (tmp_path / "a").exists()
    ckpt = _save_tiny_checkpoint(tmp_path / "model.safetensors", n_embd=8)
    assert main(["decompose", "--checkpoint", str(ckpt), *TINY, "--out", str(tmp_path / "b")]) == 2
    assert "does not match the model" in capsys.readouterr().err
    assert main(["decompose", "--checkpoint", str(ckpt), "--positions", "17", "--out", str(tmp_path / "c")]) == 2
    assert "cannot sample 17 loss positions from a sequence of 16" in capsys.readouterr().err
    assert main(["decompose", "--checkpoint", str(ckpt), "--max-offset", "-2", "--out", str(tmp_path / "d")]) == 2
    assert "max_offset K must be an integer >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_offset_gradients_of_hf_models_add_up_and_last_layer_queries_get_no_future_gradient(family):
    from myopia.hf import HFCausalLM, from_config

    cfg = {
        "gpt2": dict(model_type="gpt2", vocab_size=V, n_positions=T, n_embd=8, n_layer=2, n_head=2),
        "llama": dict(model_type="llama", vocab_size=V, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=T),
    }[family]
    model = HFCausalLM(from_config(cfg, seed=0)).double()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, V, (2, T), generator=g), torch.randint(0, V, (2, T), generator=g)
    res = offset_gradients(model, (x, y), ce_loss, max_offset=2)
    assert res.profile_check["sum_vs_vanilla"] < 1e-7 and res.profile_check["g0_vs_myopic"] < 1e-10
    assert {"h1.W_Q", "h1.W_K", "h1.W_V", "h1.W_O", "h1.MLP", "h1.norms", "embeddings", "head"} <= set(res.split)
    assert res.split["h1.W_Q"]["future_sq_norm"] < 1e-20 * res.split["h1.W_Q"]["vanilla_sq_norm"]
    assert res.split["h1.W_K"]["future_sq_norm"] > 1e-4 * res.split["h1.W_K"]["vanilla_sq_norm"]
