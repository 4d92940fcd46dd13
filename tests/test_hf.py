"""Hugging Face causal LMs under gradient policies: tiny random models of every supported
family, saved to a temporary directory and loaded back through ``myopia.hf.load``.

Oracles, written here independently of myopia's attention code, on the model's own
eager attention in float64:

* vanilla: the ordinary gradient of the summed loss;
* myopic ``kv``: one backward per loss position j, with the key/value projections of every
  position i < j replaced by constants (forward hooks) — by definition dL_j/dθ_j;
* myopic ``hidden``: one backward per loss position j, with the attention *input* of every
  position i < j a constant (pre-hooks), keys/values recomputed with the live weights;
* band horizon h: attention recomputed one query at a time, key/value i of query j live
  iff j - i <= h.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast  # noqa: E402

import myopia.hf as mhf  # noqa: E402
from myopia.policy import GradientPolicy  # noqa: E402

torch.set_num_threads(1)

V, T = 40, 8
COMMON = dict(vocab_size=V, tie_word_embeddings=False)
FAMILIES = {
    "gpt2": dict(n_layer=2, n_embd=16, n_head=2, n_positions=16, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
    "gpt_neox": dict(num_hidden_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=16, rotary_pct=0.5),
    "llama": dict(num_hidden_layers=2, hidden_size=16, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=32, max_position_embeddings=16),
    "qwen2": dict(num_hidden_layers=2, hidden_size=16, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=32, max_position_embeddings=16),
    # window 3 < T: the sliding-window mask matters
    "mistral": dict(num_hidden_layers=2, hidden_size=16, num_attention_heads=4, num_key_value_heads=2,
                    intermediate_size=32, max_position_embeddings=16, sliding_window=3),
}
KV_PROJ = {"gpt2": ("c_attn",), "gpt_neox": ("query_key_value",), "llama": ("k_proj", "v_proj"),
           "qwen2": ("k_proj", "v_proj"), "mistral": ("k_proj", "v_proj")}


def word_tokenizer(n: int = V) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<eos>": 0, **{f"w{i}": i for i in range(1, n)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<eos>", pad_token="<eos>")


def save_family(root, family: str, seed: int = 0):
    from transformers import AutoConfig

    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(family, **COMMON, **FAMILIES[family])
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # larger weights: attention patterns far from uniform, gradients well above rounding
        for p in model.parameters():
            p.mul_(3.0)
    d = root / family
    model.save_pretrained(d)
    word_tokenizer().save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {f: save_family(root, f) for f in FAMILIES}


def eager(path):
    """The model with transformers' own sdpa attention, float64 (its eager softmax runs in float32)."""
    m = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa", dtype=torch.float64)
    return m.eval()


def batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (2, T + 1), generator=g)
    return x[:, :-1], x[:, 1:]


def per_position_loss(logits, y, mask=None):  # (B, T); padding positions carry no loss
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view(y.shape)
    return loss if mask is None else loss * mask


def grads(model):
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


def attn_modules(model):
    return [m for m in model.modules() if type(m).__name__.endswith("Attention") and hasattr(m, "layer_idx")]


# ---------------------------------------------------------------------- oracles
def oracle_vanilla(path, x, y, mask=None):
    m = eager(path)
    per_position_loss(m(input_ids=x, attention_mask=mask).logits, y, mask).sum().backward()
    return grads(m)


def oracle_per_loss_position(path, family, x, y, detach, mask=None):
    """sum_j dL_j/dθ_j: one backward per j, everything the past provides held constant."""
    m = eager(path)
    handles, j_now = [], [0]

    def freeze_out(mod, inp, out):  # key/value projections at positions < j are constants
        j = j_now[0]
        return torch.cat([out[:, :j].detach(), out[:, j:]], dim=1)

    def freeze_in(mod, args, kwargs):  # attention input at positions < j is a constant
        j = j_now[0]
        if "hidden_states" in kwargs:
            h = kwargs["hidden_states"]
            kwargs = {**kwargs, "hidden_states": torch.cat([h[:, :j].detach(), h[:, j:]], dim=1)}
            return args, kwargs
        h = args[0]
        return (torch.cat([h[:, :j].detach(), h[:, j:]], dim=1), *args[1:]), kwargs

    for a in attn_modules(m):
        if detach == "kv":
            for name in KV_PROJ[family]:
                handles.append(getattr(a, name).register_forward_hook(freeze_out))
        else:
            handles.append(a.register_forward_pre_hook(freeze_in, with_kwargs=True))
    for j in range(T):
        j_now[0] = j
        per_position_loss(m(input_ids=x, attention_mask=mask).logits, y, mask)[:, j].sum().backward()
    for h in handles:
        h.remove()
    return grads(m)


HORIZON = [0]


def rowwise_horizon_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """One query at a time; key/value i of query j is a constant unless j - i <= HORIZON."""
    n_rep = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(n_rep, dim=1)
    value = value.repeat_interleave(n_rep, dim=1)
    Tq = query.shape[2]
    rows = []
    for j in range(Tq):
        live = (j - torch.arange(Tq)) <= HORIZON[0]  # (T,)
        k = torch.where(live[:, None], key, key.detach())
        v = torch.where(live[:, None], value, value.detach())
        s = (query[:, :, j : j + 1] @ k.transpose(-1, -2)) * scaling  # (B, nh, 1, T)
        allowed = torch.arange(Tq) <= j
        if attention_mask is not None:
            allowed = allowed & attention_mask[:, :, j : j + 1, :Tq].bool()
        s = s.masked_fill(~allowed, float("-inf"))
        rows.append(torch.softmax(s, -1) @ v)
    return torch.cat(rows, dim=2).transpose(1, 2).contiguous(), None


def oracle_horizon(path, x, y, h):
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register("test_rowwise", rowwise_horizon_attention)
    AttentionMaskInterface.register("test_rowwise", lambda *a, **k: sdpa_mask(*a, **{**k, "allow_is_causal_skip": False}))
    HORIZON[0] = h
    m = AutoModelForCausalLM.from_pretrained(path, attn_implementation="test_rowwise", dtype=torch.float64).eval()
    per_position_loss(m(input_ids=x).logits, y).sum().backward()
    return grads(m)


def myopia_grads(path, x, y, policy, mask=None, impl="auto"):
    model, _ = mhf.load(path, dtype=torch.float64)
    lm = mhf.HFCausalLM(model).eval()
    per_position_loss(lm(x, policy, attention_mask=mask, impl=impl), y, mask).sum().backward()
    return {n.removeprefix("hf."): g for n, g in grads(lm).items()}


def assert_grads_equal(got, want, tol=1e-10):
    assert got.keys() == want.keys()
    for n in want:
        scale = want[n].abs().max().item() + 1e-12
        err = (got[n] - want[n]).abs().max().item()
        assert err <= tol * max(1.0, scale), f"{n}: max error {err:.3e} (scale {scale:.3e})"


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("family", FAMILIES)
def test_logits_unchanged_under_every_policy_with_padding(model_dirs, family):
    path = model_dirs[family]
    ref = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    model, tok = mhf.load(path)
    assert len(tok) == V
    lm = mhf.HFCausalLM(model).eval()
    x, _ = batch()
    mask = torch.ones_like(x)
    mask[0, -3:] = 0  # right padding
    mask[1, :2] = 0  # left padding
    want = ref(input_ids=x, attention_mask=mask).logits
    want_nopad = ref(input_ids=x).logits
    for policy in [GradientPolicy(), GradientPolicy.myopic(), GradientPolicy.myopic("hidden"),
                   GradientPolicy(horizon=2), GradientPolicy(block=3, detach="hidden")]:
        with torch.no_grad():
            got = lm(x, policy, attention_mask=mask)
            got_nopad = lm(x, policy)
            plain = model(input_ids=x).logits  # the HF model itself, default policy
        real = mask.bool()
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got[real], want[real], atol=2e-5, rtol=1e-4, msg=f"{family} {policy.name}")
        torch.testing.assert_close(got_nopad, want_nopad, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(plain, want_nopad, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("policy", ["vanilla", "myopic-kv", "myopic-hidden", "h2"])
def test_gradient_equals_bruteforce(model_dirs, family, policy):
    path = model_dirs[family]
    x, y = batch()
    if policy == "vanilla":
        got, want = myopia_grads(path, x, y, GradientPolicy()), oracle_vanilla(path, x, y)
    elif policy == "h2":
        got, want = myopia_grads(path, x, y, GradientPolicy(horizon=2)), oracle_horizon(path, x, y, 2)
    else:
        d = policy.split("-")[1]
        got = myopia_grads(path, x, y, GradientPolicy.myopic(d))
        want = oracle_per_loss_position(path, family, x, y, d)
        vanilla = oracle_vanilla(path, x, y)
        # the check can fail: the myopic gradient differs from the vanilla one
        assert any((vanilla[n] - want[n]).abs().max() > 1e-6 for n in want)
    assert_grads_equal(got, want)


@pytest.mark.parametrize("impl", ["reference", "auto"])
def test_myopic_gradient_with_padding_equals_bruteforce(model_dirs, impl):
    path = model_dirs["llama"]
    x, y = batch(2)
    mask = torch.ones_like(x)
    mask[1, :3] = 0
    got = myopia_grads(path, x, y, GradientPolicy.myopic(), mask=mask, impl=impl)
    want = oracle_per_loss_position(path, "llama", x, y, "kv", mask=mask)
    assert_grads_equal(got, want)


def test_hidden_variant_differs_from_kv_only_in_key_value_weights(model_dirs):
    path = model_dirs["llama"]
    x, y = batch()
    kv = myopia_grads(path, x, y, GradientPolicy.myopic("kv"))
    hid = myopia_grads(path, x, y, GradientPolicy.myopic("hidden"))
    differ = {n for n in kv if (kv[n] - hid[n]).abs().max() > 1e-10}
    assert differ and all(("k_proj" in n or "v_proj" in n) for n in differ), differ


def test_convert_an_already_loaded_model_and_generate(model_dirs):
    path = model_dirs["gpt2"]
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    mhf.convert(model, GradientPolicy.myopic())
    assert model.config._attn_implementation == "myopia"
    x, _ = batch()
    with torch.no_grad():
        ref = eager(path).float()(input_ids=x).logits
        torch.testing.assert_close(model(input_ids=x).logits, ref, atol=2e-5, rtol=1e-4)
        out = model.generate(x[:1, :4], max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 7)


def test_frozen_past_from_the_same_model_changes_nothing(model_dirs):
    path = model_dirs["qwen2"]
    lm = mhf.HFCausalLM.from_pretrained(path).eval()
    x, _ = batch()
    past = lm.past_states(x)
    assert len(past) == 2 and past[0].k.shape == (2, 2, T, 4)  # (B, nkv, T, hs)
    with torch.no_grad():
        for d in ("kv", "hidden"):
            torch.testing.assert_close(lm(x, GradientPolicy.myopic(d), past=past), lm(x), atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip_with_tied_embeddings(tmp_path):
    from safetensors.torch import load_file, save_file

    d = mhf.make_tiny(tmp_path / "tiny", "gpt2")
    lm = mhf.HFCausalLM.from_pretrained(d)
    sd = lm.state_dict()
    assert "hf.lm_head.weight" not in sd  # tied to the embedding; saved once
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "m.safetensors"))
    other = mhf.HFCausalLM.from_pretrained(d)
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    other.load_state_dict(load_file(str(tmp_path / "m.safetensors")))
    x = torch.randint(0, 200, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(other(x), lm(x))


# ---------------------------------------------------------------------- bad input
def test_not_a_model_directory(tmp_path):
    with pytest.raises(mhf.ModelLoadError, match="not a Hugging Face model directory"):
        mhf.load(tmp_path)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(mhf.ModelLoadError, match="is a file"):
        mhf.load(tmp_path / "f.txt")
    with pytest.raises(mhf.ModelLoadError, match="does not exist"):
        mhf.load(tmp_path / "missing")


def test_unsupported_architecture_names_the_supported_families(tmp_path):
    from transformers import OPTConfig

    OPTConfig(num_hidden_layers=1, hidden_size=8, ffn_dim=16, num_attention_heads=2).save_pretrained(tmp_path)
    with pytest.raises(mhf.UnsupportedModelError) as e:
        mhf.load(tmp_path)
    for name in ("'opt'", "GPT-2", "GPT-NeoX", "Llama", "Qwen2", "Mistral"):
        assert name in str(e.value)


def test_remote_code_is_never_run_without_the_flag(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "evil", "architectures": ["EvilForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.Evil"},
    }))
    (tmp_path / "configuration_evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    with pytest.raises(mhf.ModelLoadError, match="trust_remote_code"):
        mhf.load(tmp_path)
    assert not marker.exists()


def test_tokenizer_model_mismatch(tmp_path, model_dirs):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(model_dirs["llama"], d)
    word_tokenizer(V + 10).save_pretrained(d)
    with pytest.raises(mhf.ModelLoadError, match="tokenizer/model mismatch"):
        mhf.load(d)


# ---------------------------------------------------------------------- training and the CLI
def text_file(path, n_words: int = 3000):
    g = torch.Generator().manual_seed(0)
    words = [f"w{i}" for i in torch.randint(1, V, (n_words,), generator=g).tolist()]
    path.write_text("\n\n".join(" ".join(words[i : i + 60]) for i in range(0, n_words, 60)))
    return path


def test_gap_command_on_a_local_hf_model(tmp_path, model_dirs, monkeypatch):
    from myopia.cli import main

    monkeypatch.setenv("MYOPIA_CACHE", str(tmp_path / "cache"))
    data = text_file(tmp_path / "data.txt")
    out = tmp_path / "gap"
    rc = main(["gap", "--model", str(model_dirs["gpt2"]), "--data", str(data), "--seeds", "1", "--out", str(out),
               "--steps", "2", "--batch-size", "2", "--seq-len", "8", "--eval-every", "2", "--test-batches", "2",
               "--workers", "1", "--no-progress"])
    assert rc == 0
    r = json.loads((out / "results.json").read_text())
    assert r["model"]["kind"] == "hf" and len(r["vanilla_loss"]) == 1
    assert {"gap", "vanilla_loss", "myopic_loss", "per_position_gap"} <= r.keys()
    assert len(r["per_position_gap"]) == 8


def test_gap_command_bad_input_is_one_line(tmp_path, model_dirs, capsys):
    from myopia.cli import main

    rc = main(["gap", "--model", str(tmp_path), "--data", "x.txt", "--out", str(tmp_path / "o")])
    assert rc == 2 and "not a Hugging Face model directory" in capsys.readouterr().err
    rc = main(["gap", "--model", str(model_dirs["gpt2"]), "--out", str(tmp_path / "o")])
    assert rc == 2 and "--data" in capsys.readouterr().err


# ---------------------------------------------------------------------- the seam for other measures
@pytest.mark.parametrize("family", ["gpt2", "gpt_neox"])
def test_offset_decomposition_runs_on_hf_model_through_the_adapter(model_dirs, family):
    gradients = pytest.importorskip("myopia.gradients")
    lm = mhf.HFCausalLM.from_pretrained(model_dirs[family], dtype=torch.float64)
    x, y = batch()
    r = gradients.offset_gradients(lm, (x, y), per_position_loss, max_offset=2)
    assert r.seq_len == T and r.max_offset == 2
