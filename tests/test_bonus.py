"""The local myopia bonus: θ0 frozen supplies the past, φ is trained for the present.

Brute-force definition of φ's gradient, written independently of myopia's attention code:
one backward per loss position j, where in every attention layer the positions i < j are
taken from θ0 — their key/value projections (``kv``) or their attention inputs, from which
φ's live projections recompute the keys/values (``hidden``) — and position j is φ's own.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from myopia.measures.bonus import frozen_past_forward, local_myopia_bonus
from myopia.model import GPT, GPTConfig
from myopia.policy import GradientPolicy
from myopia.report.figures import draw
from myopia.train import TrainConfig

torch.set_num_threads(1)
V, T = 40, 8


def ce(logits, y):  # (B, T)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view(y.shape)


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (2, T + 1), generator=g)
    return x[:, :-1], x[:, 1:]


def perturbed(model, seed=5, scale=0.3):
    import copy

    phi = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in phi.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return phi


def grads(model):
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


def bruteforce(phi, theta0, x, y, detach, sites, call):
    """sum_j dL_j/dφ with positions i < j provided by θ0 (see the module docstring).

    sites(model) -> list of (module, kind): kind "out" = key/value projection (forward
    hook on its output), "in" = attention module (pre-hook on its input).
    """
    recorded = {}

    def rec_out(key):
        return lambda mod, inp, out: recorded.__setitem__(key, out.detach())

    def rec_in(key):
        def hook(mod, args, kwargs):
            recorded[key] = (kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]).detach()
        return hook

    kind = "out" if detach == "kv" else "in"
    hs = []
    for i, mod in enumerate(sites(theta0, kind)):
        hs.append(mod.register_forward_hook(rec_out(i)) if kind == "out"
                  else mod.register_forward_pre_hook(rec_in(i), with_kwargs=True))
    with torch.no_grad():
        call(theta0, x)
    for h in hs:
        h.remove()

    j_now = [0]

    def swap_out(key):
        def hook(mod, inp, out):
            j = j_now[0]
            return torch.cat([recorded[key][:, :j], out[:, j:]], dim=1)
        return hook

    def swap_in(key):
        def hook(mod, args, kwargs):
            j = j_now[0]
            h = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            h = torch.cat([recorded[key][:, :j], h[:, j:]], dim=1)
            if "hidden_states" in kwargs:
                return args, {**kwargs, "hidden_states": h}
            return (h, *args[1:]), kwargs
        return hook

    hs = [mod.register_forward_hook(swap_out(i)) if kind == "out"
          else mod.register_forward_pre_hook(swap_in(i), with_kwargs=True)
          for i, mod in enumerate(sites(phi, kind))]
    phi.zero_grad()
    for j in range(T):
        j_now[0] = j
        ce(call(phi, x), y)[:, j].sum().backward()
    for h in hs:
        h.remove()
    return grads(phi)


def gpt_sites(model, kind):
    return [b.attn.c_attn if kind == "out" else b.attn for b in model.transformer.h]


def check(theta0, phi, oracle_theta0, oracle_phi, sites, call, detach, name_fix=lambda n: n):
    """φ's gradient through the measure's forward equals the brute force; θ0 gets none."""
    x, y = batch()
    policy = GradientPolicy.myopic(detach)
    theta0.zero_grad()
    phi.zero_grad()
    ce(frozen_past_forward(theta0)(phi, x, policy), y).sum().backward()
    got = {name_fix(n): g for n, g in grads(phi).items()}
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in theta0.parameters()), "θ0 received gradient"
    want = bruteforce(oracle_phi, oracle_theta0, x, y, detach, sites, call)
    assert got.keys() == want.keys()
    for n in want:
        err = (got[n] - want[n]).abs().max().item()
        assert err <= 1e-10 * max(1.0, want[n].abs().max().item()), f"{n}: {err:.3e}"
    return got



@pytest.mark.parametrize("detach", ["kv", "hidden"])
def test_bonus_gradient_equals_bruteforce_builtin_gpt(detach):
    torch.manual_seed(0)
    theta0 = GPT(GPTConfig(block_size=T, vocab_size=V, n_layer=2, n_head=2, n_embd=16)).double()
    with torch.no_grad():
        for p in theta0.parameters():
            p.mul_(4.0)
    phi = perturbed(theta0)
    got = check(theta0, phi, theta0, phi, gpt_sites, lambda m, x: m(x), detach)
    # the check can fail: with the past from θ0, φ's gradient is not its own myopic gradient
    x, y = batch()
    phi.zero_grad()
    ce(phi(x, GradientPolicy.myopic(detach)), y).sum().backward()
    assert any((got[n] - g).abs().max() > 1e-6 for n, g in grads(phi).items())


HF_KV = {"gpt2": ("c_attn",), "llama": ("k_proj", "v_proj")}
HF_CFG = {
    "gpt2": dict(n_layer=2, n_embd=16, n_head=2, n_positions=16, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
    "llama": dict(num_hidden_layers=2, hidden_size=16, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=32, max_position_embeddings=16),
}


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("detach", ["kv", "hidden"])
def test_bonus_gradient_equals_bruteforce_hf(tmp_path, family, detach):
    transformers = pytest.importorskip("transformers")
    import myopia.hf as mhf

    torch.manual_seed(0)
    cfg = transformers.AutoConfig.for_model(family, vocab_size=V, tie_word_embeddings=False, **HF_CFG[family])
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    theta0 = mhf.HFCausalLM.from_pretrained(tmp_path, dtype=torch.float64).eval()
    phi = perturbed(theta0).eval()

    def attn_mods(m):
        return [a for a in m.modules() if type(a).__name__.endswith("Attention") and hasattr(a, "layer_idx")]

    def sites(m, kind):
        if kind == "in":
            return attn_mods(m)
        return [getattr(a, name) for a in attn_mods(m) for name in HF_KV[family]]

    # the oracle runs the plain HF models with transformers' own sdpa attention
    ref0 = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="sdpa", dtype=torch.float64).eval()
    ref_phi = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="sdpa", dtype=torch.float64).eval()
    ref_phi.load_state_dict({n.removeprefix("hf."): p for n, p in phi.state_dict().items()})
    check(theta0, phi, ref0, ref_phi, sites, lambda m, x: m(input_ids=x).logits, detach,
          name_fix=lambda n: n.removeprefix("hf."))


def test_bonus_measure_on_builtin_gpt(tmp_path):
    from myopia.data import make_task

    task = make_task("precache-read", seq_len=8)
    torch.manual_seed(0)
    theta0 = GPT(GPTConfig(block_size=8, n_in=task.n_in, n_out=task.n_out, n_layer=2, n_head=2, n_embd=16))
    cfg = TrainConfig(steps=3, batch_size=4, eval_every=3, test_batches=3, warmup_steps=1, lr=1e-3)
    r = local_myopia_bonus(theta0, task, train_cfg=cfg, detach=["kv", "hidden"], out_dir=tmp_path / "b", progress=False)
    data = json.loads((tmp_path / "b" / "results.json").read_text())
    assert {"base_loss", "control_loss", "bonus_loss", "bonus", "raw_bonus", "training_drift", "variants",
            "curves"} <= data.keys()
    for q in ("bonus", "raw_bonus", "training_drift"):
        assert {"mean", "ci95"} <= data[q].keys() and data[q]["n"] == 3
    assert abs(data["bonus"]["mean"] - (r.control_loss - r.bonus_loss)) < 1e-9
    assert abs(data["raw_bonus"]["mean"] - (r.base_loss - r.bonus_loss)) < 1e-9
    assert abs(data["training_drift"]["mean"] - (r.base_loss - r.control_loss)) < 1e-9
    assert set(data["variants"]) == {"kv", "hidden"}
    assert set(data["curves"]) == {"control-vanilla", "bonus-myopic", "bonus-myopic-hidden"}
    assert all(c[0] == {"step": 0, "val_loss": c[0]["val_loss"]} for c in data["curves"].values())  # step 0 evaluated
    draw(r, tmp_path / "b")  # figures come from the result, in report/
    assert (tmp_path / "b" / "bonus.png").exists()
    # θ0 itself is left untouched by the measurement
    x, _ = task.batch("test", 0, 2)
    torch.manual_seed(0)
    fresh = GPT(GPTConfig(block_size=8, n_in=task.n_in, n_out=task.n_out, n_layer=2, n_head=2, n_embd=16))
    torch.testing.assert_close(theta0(x), fresh(x))


def test_bonus_is_zero_without_a_past_while_the_raw_bonus_is_not(tmp_path, monkeypatch):
    """With one-token contexts there is no past: φ (present loss, θ0's past) and the control θ0′
    (θ0 trained on, vanilla) are the same computation trained on the same batches, so the
    bonus L(θ0′) - L(φ*) is 0 up to float rounding. θ0 is an untrained GPT, so the extra
    steps alone lower the loss a lot: the raw bonus L(θ0) - L(φ*) is large and is all
    training drift — exactly what the control removes."""
    from myopia.data import make_task

    monkeypatch.setenv("MYOPIA_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(f"the cat {i} sat on the mat and the dog {i % 7} ran." for i in range(60)))
    task = make_task("text", data=str(corpus), seq_len=1)
    torch.manual_seed(0)
    theta0 = GPT(GPTConfig(block_size=1, vocab_size=task.vocab_size, n_layer=2, n_head=2, n_embd=16))
    cfg = TrainConfig(steps=30, batch_size=16, eval_every=10, test_batches=4, warmup_steps=3, lr=1e-2)
    r = local_myopia_bonus(theta0, task, train_cfg=cfg, detach=["kv", "hidden"], out_dir=tmp_path / "b",
                           progress=False)
    assert r.control_selected_step == 30  # still improving: the control uses every step
    for var in r.variants.values():
        assert abs(var["bonus"]["mean"]) < 1e-5 and var["selected_step"] == 30, var["policy"]
        assert var["raw_bonus"]["mean"] > 1.0  # ln(257) = 5.55 nats at init; 30 steps learn byte bigrams
    assert abs(r.training_drift["mean"] - r.raw_bonus["mean"]) < 1e-5


def test_bonus_at_step_zero_is_zero_with_theta0_init():
    """φ = θ0 with θ0's past reproduces θ0's outputs exactly: the bonus starts at 0."""
    torch.manual_seed(0)
    theta0 = GPT(GPTConfig(block_size=T, vocab_size=V, n_layer=2, n_head=2, n_embd=16))
    x, _ = batch()
    with torch.no_grad():
        for d in ("kv", "hidden"):
            out = frozen_past_forward(theta0)(theta0, x, GradientPolicy.myopic(d))
            torch.testing.assert_close(out, theta0(x))


def test_bonus_command_on_hf_model_and_gap_run(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from myopia.cli import main
    from myopia.hf import make_tiny

    monkeypatch.setenv("MYOPIA_CACHE", str(tmp_path / "cache"))
    model = make_tiny(tmp_path / "tiny", "gpt2")
    data = tmp_path / "d.txt"
    data.write_text("\n\n".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog. " * 3 for i in range(60)))
    out = tmp_path / "bonus"
    rc = main(["bonus", "--model", str(model), "--data", str(data), "--out", str(out), "--steps", "2",
               "--batch-size", "2", "--seq-len", "16", "--eval-every", "2", "--test-batches", "2", "--no-progress"])
    assert rc == 0
    r = json.loads((out / "results.json").read_text())
    assert {"base_loss", "bonus_loss"} <= r.keys() and {"mean", "ci95"} <= r["bonus"].keys()

    gap = tmp_path / "gap"
    assert main(["gap", "--task", "precache-read", "--seq-len", "8", "--seeds", "1", "--steps", "2", "--batch-size", "4",
                 "--n-embd", "16", "--n-head", "2", "--test-batches", "2", "--eval-every", "2", "--workers", "1",
                 "--out", str(gap), "--no-progress"]) == 0
    rc = main(["bonus", "--model", str(gap / "runs" / "vanilla-seed0"), "--out", str(tmp_path / "b2"),
               "--steps", "2", "--batch-size", "4", "--test-batches", "2", "--eval-every", "2", "--no-progress"])
    assert rc == 0
    r = json.loads((tmp_path / "b2" / "results.json").read_text())
    assert r["model"]["kind"] == "gpt" and r["task"]["name"] == "precache-read"


def test_bonus_command_bad_input(tmp_path, capsys):
    from myopia.cli import main

    rc = main(["bonus", "--model", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2 and "neither a Hugging Face model directory" in capsys.readouterr().err


def test_bonus_python_default_equals_the_command(tmp_path):
    """`myopia bonus RUN` and `local_myopia_bonus(θ0, task)` with no training config share one
    preset (myopia.presets.BONUS_TRAIN), so the same inputs give the same results.json."""
    from myopia.cli import main
    from myopia.measures.bonus import load_theta0

    gap = tmp_path / "gap"
    assert main(["gap", "--task", "precache-read", "--seq-len", "8", "--seeds", "1", "--steps", "2", "--batch-size", "4",
                 "--n-embd", "16", "--n-head", "2", "--test-batches", "2", "--eval-every", "2", "--workers", "1",
                 "--out", str(gap), "--no-progress"]) == 0
    run = gap / "runs" / "vanilla-seed0"
    assert main(["bonus", str(run), "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    theta0, task, info, spec = load_theta0(run)
    local_myopia_bonus(theta0, task, model_info=info, model_spec=spec, out_dir=tmp_path / "api", progress=False)
    cli, api = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("cli", "api"))
    cli.pop("provenance"), api.pop("provenance")
    assert cli["train"]["steps"] == 200 and cli["train"]["lr"] == 1e-4  # the preset, not TrainConfig()'s defaults
    assert cli == api
