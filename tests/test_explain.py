"""`myopia explain`: every per-token number checked against a brute-force definition, the
held-out search, probes plugging in, and the errors it must give before writing anything."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from oracles import per_position_jacobian
from tiny_runs import tiny_text_gap

from myopia import GPT, GPTConfig, GradientPolicy
from myopia.cli import main
from myopia.explain import attribution, encode_prompt, explain, load_gap_pair, load_model_pair
from myopia.gradients import _collect, _PositionCapture, parameter_groups, position_gradients
from myopia.policy import VANILLA


def ce(out, y):
    return F.cross_entropy(out.transpose(1, 2), y, reduction="none")  # (B, T)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=8)).double()
    with torch.no_grad():  # non-trivial weights, so no term vanishes by initialisation
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    g = torch.Generator().manual_seed(1)
    return model, torch.randint(0, 11, (2, 7), generator=g), torch.randint(0, 11, (2, 7), generator=g)


@pytest.fixture(scope="module")
def gap_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MYOPIA_CACHE", str(root / "cache"))
        torch.set_num_threads(1)
        out, _ = tiny_text_gap(root)
        yield out


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------ exactness
def _restricted(M: dict, parts) -> torch.Tensor:
    """(j, i, params of the group) from the brute-force M[name] (j, i, *shape)."""
    T = next(iter(M.values())).shape[0]
    return torch.cat([(M[p.name] if p.stop is None else M[p.name].narrow(p.dim + 2, p.start, p.stop - p.start))
                      .reshape(T, T, -1) for p in parts], -1)


@pytest.mark.parametrize("group", ["total", "all:W_K+W_V", "h1.W_V", "embeddings"])
def test_position_split_equals_per_position_copies_bruteforce(tiny, group):
    model, x, y = tiny
    pg = position_gradients(model, (x, y), ce, groups=(group,))
    M = _restricted(per_position_jacobian(model, x, lambda out: ce(out, y)), _collect(parameter_groups(model))[group])
    g = M.sum(0)  # (i, P): everything theta_i receives
    inner = torch.einsum("jip,ip->ij", M, g)  # [i, j] = <dL_j/dtheta_i, g_i>
    assert inner.abs().max() > 1e-4  # the comparison is not between zeros
    torch.testing.assert_close(pg.inner[group], inner, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(pg.sq_norm[group], (g * g).sum(1), rtol=1e-9, atol=1e-12)


def test_position_shares_add_up_to_one_and_the_last_position_has_no_future(tiny):
    model, x, y = tiny
    pg = position_gradients(model, (x, y), ce, groups=("total", "all:W_K"))
    T = x.shape[1]
    shares = pg.offset_shares()
    torch.testing.assert_close(shares.sum(1), torch.ones(T, dtype=torch.float64))
    assert torch.all(pg.inner["total"].tril(-1) == 0)  # the loss at j < i never reaches theta_i
    assert float(pg.future_share()[-1]) == 0.0
    # the first query attends to one key only (softmax weight 1, whatever the key): W_K at position 0
    # learns nothing from its own loss, all of it from later ones
    assert float(pg.future_share("all:W_K")[0]) == pytest.approx(1.0, abs=1e-12)


def test_position_split_of_a_tied_hf_gpt2_matches_one_backward_per_loss_position():
    """Learned positions shared by every row, tied embedding/head and Conv1D weights: the batched
    split equals the per-loss-position hooks of the offset profile (themselves checked against
    per-position copies in test_decompose)."""
    from myopia.hf import HFCausalLM, from_config

    torch.manual_seed(0)
    cfg = {"model_type": "gpt2", "vocab_size": 23, "bos_token_id": 0, "eos_token_id": 0, "n_layer": 2, "n_embd": 16, "n_head": 2, "n_positions": 16,
           "tie_word_embeddings": True}
    model = HFCausalLM(from_config(cfg, seed=0)).double().eval()  # eval: no dropout
    x, y = torch.randint(0, 23, (1, 6)), torch.randint(0, 23, (1, 6))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    T = x.shape[1]
    cap = _PositionCapture(model, {id(p): n for n, p in named}, T, T - 1)
    loss = ce(model(x, policy=VANILLA), y)
    cap.remove()
    per_j = []  # per_j[j][name][i] = dL_j/dtheta_i
    for j in range(T):
        cap.j = j
        cap.cur = {n: torch.zeros(T + 1, *p.shape, dtype=p.dtype) for n, p in named}
        torch.autograd.grad(loss[:, j].sum() / T, [p for _, p in named], retain_graph=True)
        per_j.append({n: torch.cat([t[: j + 1].flip(0), torch.zeros(T - j - 1, *t.shape[1:], dtype=t.dtype)]) for n, t in cap.cur.items()})
    flat = torch.stack([torch.cat([d[n].reshape(T, -1) for n, _ in named], 1) for d in per_j])  # (j, i, P)
    ref = torch.einsum("jip,ip->ij", flat, flat.sum(0))
    pg = position_gradients(model, (x, y), ce, groups=("total",))
    assert ref.abs().max() > 1e-6
    torch.testing.assert_close(pg.inner["total"], ref, rtol=1e-8, atol=1e-12)


def test_attribution_is_gradient_times_input_one_backward_per_position(tiny):
    model = tiny[0]
    ids, targets = torch.tensor([3, 1, 4, 1, 5, 9]), torch.tensor([2, 6, 5, 3, 5, 8])
    A = attribution(model, ids, targets)
    E = model.transformer.wte.weight[ids].detach().clone().requires_grad_(True)
    for t in range(len(ids)):
        handle = model.transformer.wte.register_forward_hook(lambda mod, i, o: E[None])
        out = model(ids[None])
        handle.remove()
        (g,) = torch.autograd.grad(torch.log_softmax(out[0, t], -1)[targets[t]], E)
        torch.testing.assert_close(A[t], (g * E).sum(-1).detach(), rtol=1e-9, atol=1e-12)
    assert torch.all(A.triu(1) == 0)  # causal: no later position is read


# ------------------------------------------------------------------ the command
def test_explain_writes_the_page_and_numbers_that_match_the_models(gap_dir, tmp_path, capsys):
    from myopia.data import make_task
    from myopia.runs import load_checkpoint_model

    out = tmp_path / "e"
    prompt = "the cat sat on"
    code, stdout, err = run_cli(capsys, "explain", prompt, "--gap-dir", gap_dir, "--out", out)
    assert code == 0, err
    assert "largest gap" in stdout and "explain.html" in stdout
    data = json.loads((out / "explain.json").read_text())
    page = (out / "explain.html").read_text()
    assert not re.search(r"(src|href)=['\"]?(https?:|//)|url\(|<img src=|<link ", page)  # self-contained, no network
    toks = data["tokens"]
    assert [t["token"] for t in toks] == list(prompt)  # byte tokens
    assert data["models"]["vanilla"]["label"] == "vanilla-seed0" and data["models"]["myopic"]["policy"] == "myopic"
    config = json.loads((gap_dir / "config.json").read_text())
    task = make_task(**config["task"])
    ids = torch.tensor(list(prompt.encode()))
    logp = {}
    for role, key in (("vanilla", "vanilla-seed0"), ("myopic", "myopic-seed0")):
        model = load_checkpoint_model(gap_dir / "runs" / key / "checkpoint" / "model.safetensors", config["model"], task)
        with torch.no_grad():
            logp[role] = torch.log_softmax(model(ids[None])[0].double(), -1)  # (T, V)
        if role == "vanilla":
            shares = position_gradients(model, (ids[None, :-1], ids[None, 1:]), ce).future_share()
    for t, tk in enumerate(toks[:-1]):
        for role in ("vanilla", "myopic"):
            assert tk[f"{role}_loss"] == pytest.approx(-float(logp[role][t, ids[t + 1]]), rel=1e-5)
            probs = [q["prob"] for q in tk["top5"][role]]
            assert probs == sorted(probs, reverse=True) and len(probs) == 5
            assert tk["top5"][role][0]["id"] == int(logp[role][t].argmax())
        assert tk["gap"] == pytest.approx(tk["myopic_loss"] - tk["vanilla_loss"], abs=1e-5)
        assert tk["future_grad_share"] == pytest.approx(float(shares[t]), abs=1e-5)
        assert sum(tk["future_grad"]["vanilla"]["by_offset"]) == pytest.approx(1.0, abs=1e-5)
        a = torch.tensor(tk["reads"]["vanilla"]["attribution"])
        assert len(a) == t + 1 and tk["reads"]["vanilla"]["self_share"] == pytest.approx(float(a[t].abs() / a.abs().sum()), rel=1e-4)
    last = toks[-1]
    assert last["vanilla_loss"] is None and last["gap"] is None and len(last["top5"]["vanilla"]) == 5
    assert "no probes given" in data["probes"]["note"]


def test_models_flag_and_variant_choose_the_runs(gap_dir):
    runs = gap_dir / "runs"
    by_dir = explain(load_gap_pair(gap_dir, variant="hidden"), ["a cat"])
    by_models = explain(load_model_pair(runs / "vanilla-seed0", runs / "myopic-hidden-seed0"), ["a cat"])
    assert by_dir.models["myopic"]["label"] == "myopic-hidden-seed0"
    assert by_dir.models["myopic"]["policy"] == "myopic-hidden"
    assert [t["gap"] for t in by_dir.tokens] == [t["gap"] for t in by_models.tokens]


def test_find_explains_the_held_out_windows_with_the_largest_mean_gap(gap_dir):
    pair = load_gap_pair(gap_dir)
    result = explain(pair, find=2)
    task = pair.task
    n = task.n_contexts["test"]
    assert result.search["windows"] == n and len(result.prompts) == 2
    x, _ = task.batch("test", 0, n)  # every held-out window once
    gaps = []
    with torch.no_grad():
        for k in range(n):
            losses = [F.cross_entropy(m.model(x[k:k + 1])[0, :-1].double(), x[k, 1:]).item() for m in pair.models]
            gaps.append(losses[1] - losses[0])
    best = sorted(range(n), key=lambda k: -gaps[k])[:2]
    assert [s["window"] for s in result.search["selected"]] == best
    for prompt, k in zip(result.prompts, best):
        assert prompt["mean_gap"] == pytest.approx(gaps[k], abs=1e-5)  # the page explains what the search ranked
    assert result.search["mean_gap"] == pytest.approx(sum(gaps) / n, abs=1e-6)


def test_probes_plug_in_when_a_probes_directory_is_given(gap_dir, tmp_path):
    from safetensors.torch import save_file

    pair = load_gap_pair(gap_dir)
    torch.manual_seed(0)
    W = torch.randn(257, 16)
    probes = tmp_path / "probes"
    probes.mkdir()
    save_file({"weight": W}, str(probes / "v-l1-k2.safetensors"))
    (probes / "probes.json").write_text(json.dumps({"probes": [
        {"model": "vanilla-seed0", "layer": 1, "offset": 2, "file": "v-l1-k2.safetensors"}]}))
    result = explain(pair, ["the cat sat"], probes_dir=probes)
    ids = torch.tensor(list(b"the cat sat"))
    with torch.no_grad():
        _, hidden = pair.vanilla.model(ids[None], return_hidden=True)
    probs = torch.softmax(hidden[1][0].double() @ W.double().T, -1)
    for t, tk in enumerate(result.tokens):
        row = tk["probes"]["vanilla"][0]
        assert row["offset"] == 2 and row["layer"] == 1
        if t + 2 < len(ids):
            assert row["target_prob"] == pytest.approx(float(probs[t, ids[t + 2]]), rel=1e-5)
        else:
            assert row["target"] is None
        assert tk["probes"]["myopic"] == []  # no probe for the myopic run: said per model, not invented
    assert result.probes["found"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no probes" in explain(pair, ["the cat"], probes_dir=empty).probes["note"]
    save_file({"weight": torch.randn(257, 8)}, str(probes / "v-l1-k2.safetensors"))  # the wrong width
    with pytest.raises(ValueError, match=r"needs \(V, 16\) at layer 1"):
        explain(pair, ["the cat"], probes_dir=probes, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_input_gets_one_clear_error_before_anything_is_written(gap_dir, tmp_path, capsys):
    from myopia.hf import make_tiny

    out = tmp_path / "e"
    cases = [
        (["the cat sat on the mat today"], "longer than the models' context of 16"),
        (["t"], "at least 2"),
        (["the cat", "--seed", "3"], "its seeds are 0"),
        (["the cat", "--find", "-1"], "N >= 1"),
        ([], "give a prompt"),
    ]
    for argv, msg in cases:
        code, _, err = run_cli(capsys, "explain", *argv, "--gap-dir", gap_dir, "--out", out)
        assert code == 2 and msg in err, (argv, err)
    code, _, err = run_cli(capsys, "explain", "the cat", "--models", str(gap_dir / "runs" / "vanilla-seed0"), "--out", out)
    assert code == 2 and "two comma-separated" in err
    code, _, err = run_cli(capsys, "explain", "the cat", "--gap-dir", tmp_path, "--out", out)
    assert code == 2 and "holds no config.json" in err
    hf = make_tiny(tmp_path / "hf", "gpt2")
    code, _, err = run_cli(capsys, "explain", "the cat", "--models", f"{gap_dir / 'runs' / 'vanilla-seed0'},{hf}", "--out", out)
    assert code == 2 and "do not share a tokenizer" in err
    assert not out.exists()
    (out / "x").mkdir(parents=True)
    code, _, err = run_cli(capsys, "explain", "the cat", "--gap-dir", gap_dir, "--out", out)
    assert code == 2 and "--overwrite" in err


def test_characters_the_tokenizer_does_not_cover_are_named(gap_dir):
    from tokenizers import Tokenizer, models, pre_tokenizers

    from myopia.data.tokenization import HFTokenizer

    vocab = {c: i for i, c in enumerate("[UNK] abcdefghijklmnopqrstuvwxyz".split(" ")[0:1] + list(" abcdefghijklmnopqrstuvwxyz"))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    pair = load_gap_pair(gap_dir)
    pair.tokenizer = HFTokenizer(tok, eod=None, n_tokens=len(vocab), fingerprint="chars", fast_backend=tok)
    assert encode_prompt(pair, "the cat")[:3] == [vocab["t"], vocab["h"], vocab["e"]]
    with pytest.raises(ValueError, match="does not cover the character.*'é'"):
        encode_prompt(pair, "the café")


def test_a_real_valued_task_is_refused(tmp_path):
    from myopia import TrainConfig, myopia_gap

    train = TrainConfig(steps=2, batch_size=4, eval_every=2, eval_batches=1, test_batches=1, checkpoint_every=2)
    myopia_gap("precache", model={"n_layer": 1, "n_head": 2, "n_embd": 8}, train=train, seeds=1,
               out_dir=tmp_path / "gap", workers=1, progress=False)
    with pytest.raises(ValueError, match="real-valued task; explain needs a token task"):
        load_gap_pair(tmp_path / "gap")


def test_prompt_file_and_two_hugging_face_models(gap_dir, tmp_path, capsys):
    from myopia.hf import make_tiny

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the cat\\nsat\n\nhello there\n")
    a, b = make_tiny(tmp_path / "a", "gpt2", seed=0), make_tiny(tmp_path / "b", "gpt2", seed=1)
    out = tmp_path / "e"
    code, stdout, err = run_cli(capsys, "explain", "--file", prompts, "--models", f"{a},{b}", "--out", out)
    assert code == 0, err
    data = json.loads((out / "explain.json").read_text())
    assert [p["text"] for p in data["prompts"]] == ["the cat\nsat", "hello there"]
    assert data["models"]["myopic"]["label"] == "b" and data["models"]["vanilla"]["policy"] == "unknown"
    for p in data["prompts"]:
        assert all(t["gap"] == pytest.approx(t["myopic_loss"] - t["vanilla_loss"], abs=1e-5) for t in p["tokens"][:-1])
        assert all(t["future_grad"]["myopic"]["share"] is not None for t in p["tokens"][:-1])
    code, _, err = run_cli(capsys, "explain", "--find", "1", "--models", f"{a},{b}", "--out", tmp_path / "f")
    assert code == 2 and "--find searches the held-out split" in err
