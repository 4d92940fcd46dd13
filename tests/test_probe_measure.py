"""`myopia probe`: baselines against counting by hand, the batched causal test against one
sequence at a time, and the command on a gap directory, one run and an HF model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from myopia.measures.probe import (
    TokenClasses, causal_entry, layer_states, per_position_losses, skip_bigram_baselines, token_counts,
)
from myopia.model import GPT, GPTConfig
from myopia.probes import ConceptEraser


pytestmark = pytest.mark.usefixtures("one_thread")


def test_skip_bigram_baseline_matches_counting_by_hand():
    g = torch.Generator().manual_seed(0)
    V, T, K = 7, 6, 3

    def seqs(n):
        w = torch.randint(0, V, (n, T + 1), generator=g)
        w[:, 1:] = torch.where(torch.rand(n, T, generator=g) < 0.5, (w[:, :-1] + 2) % V, w[:, 1:])  # some structure
        return w[:, :-1], w[:, 1:]

    train, val, test = seqs(40), seqs(10), seqs(12)
    classes = TokenClasses.from_counts(token_counts(*train, V), 4)  # 4 tokens + "other"
    assert classes.n == 5
    for k in (1, 2, 3):
        scores, nll = skip_bigram_baselines(*train, classes, k, K, val, test)
        # by hand: pairs (x_t, class of token t+k = y_{t+k-1}) at t = 0..T-K
        n_cls = 5
        joint = torch.zeros(V, n_cls, dtype=torch.float64)
        for x, y in zip(*train):
            for t in range(T - K + 1):
                joint[x[t], classes.class_of[y[t + k - 1]]] += 1
        uni = (joint.sum(0) + 1) / (joint.sum() + n_cls)
        a = scores["bigram_alpha"]
        table = (joint + a * uni) / (joint.sum(1, keepdim=True) + a)
        want, want_uni = [], []
        for x, y in zip(*test):
            for t in range(T - K + 1):
                c = classes.class_of[y[t + k - 1]]
                want.append(-table[x[t], c].log())
                want_uni.append(-uni[c].log())
        assert scores["bigram_ce"] == pytest.approx(float(torch.stack(want).mean()), rel=1e-12)
        assert scores["unigram_ce"] == pytest.approx(float(torch.stack(want_uni).mean()), rel=1e-12)
        assert nll.shape == (12, T - K + 1)


def test_vocabulary_probe_gives_each_class_the_probe_probability():
    """The export for `myopia explain`: logits over the whole vocabulary on the raw state,
    whose softmax summed over each class is the class probe's softmax."""
    from myopia.measures.probe import vocabulary_probe
    from myopia.probes import LinearProbe, Standardizer

    g = torch.Generator().manual_seed(0)
    V, C = 9, 5
    classes = TokenClasses.from_counts(torch.rand(V, generator=g, dtype=torch.float64), 4)  # 4 tokens + other
    probe = LinearProbe("softmax", Standardizer(torch.randn(C, generator=g), torch.rand(C, generator=g) + 0.5),
                        torch.randn(C, 5, generator=g), torch.randn(5, generator=g), 0.1, 0.0)
    h = torch.randn(7, C, generator=g)
    vocab = vocabulary_probe(probe, classes)
    assert vocab["weight"].shape == (V, C) and vocab["bias"].shape == (V,)
    p_vocab = torch.softmax(h @ vocab["weight"].T + vocab["bias"], -1)  # (7, V)
    per_class = torch.zeros(7, 5).index_add_(1, classes.class_of, p_vocab)
    torch.testing.assert_close(per_class, torch.softmax(probe.predict(h), -1), rtol=1e-5, atol=1e-6)


def test_batched_erasure_equals_one_sequence_at_a_time():
    """Each sequence of a batch is edited at its own position in one forward; sequences are
    independent, so this equals editing them one by one."""
    from myopia.data import make_task

    task = make_task("precache", seq_len=8, window=2)
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, n_in=2, n_out=1, n_layer=2, n_head=2, n_embd=16)).double()
    x, y = task.batch("test", 0, 6)
    x, y = x.double(), y.double()
    g = torch.Generator().manual_seed(1)
    v = torch.randn(16, generator=g, dtype=torch.float64)
    eraser = ConceptEraser(mean=torch.randn(16, generator=g, dtype=torch.float64),
                           proj=torch.outer(v, v) / (v @ v), rank=1)
    positions = torch.tensor([0, 3, 7, 1, 5, 2])
    clean = per_position_losses(model, task, x, y, batch_size=4)
    edited = per_position_losses(model, task, x, y, 4, layer=1, edit_fn=eraser, positions=positions)
    for b in range(6):
        one = per_position_losses(model, task, x[b: b + 1], y[b: b + 1], 1, layer=1, edit_fn=eraser,
                                  positions=positions[b: b + 1])
        torch.testing.assert_close(edited[b: b + 1], one, rtol=0, atol=1e-12)
        t = int(positions[b])
        assert torch.equal(edited[b, :t], clean[b, :t])
    entry = causal_entry(edited - clean, clean, positions, None, 1)
    delta = edited - clean
    assert entry["effect"] == pytest.approx(float(delta.sum(1).mean()), abs=1e-12)
    present = delta[torch.arange(6), positions]
    assert entry["present"]["mean"] == pytest.approx(float(present.mean()), abs=1e-12)
    assert entry["future"]["mean"] == pytest.approx(float((delta.sum(1) - present).mean()), abs=1e-12)
    tok = causal_entry(delta, clean, positions.clamp(max=6), 1, 1)  # the loss one position later
    assert tok["effect"] == pytest.approx(float(delta[torch.arange(6), positions.clamp(max=6) + 1].mean()), abs=1e-12)


SETTINGS = ["--k-max", "2", "--classes", "12", "--train-seqs", "24", "--val-seqs", "8", "--test-seqs", "16",
            "--baseline-seqs", "32", "--batch-size", "16", "--no-progress"]


def text_file(tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("\n\n".join(f"Note {i}: the quick brown fox jumps over the lazy dog {i % 7} times. " * 4
                                for i in range(400)))
    return data


def test_probe_command_on_gap_dir_checkpoint_and_hf_model(tmp_path, monkeypatch):
    from myopia.cli import main
    from myopia.data import make_task

    monkeypatch.setenv("MYOPIA_CACHE", str(tmp_path / "cache"))
    data = text_file(tmp_path)
    gap = tmp_path / "gap"
    assert main(["gap", "--data", str(data), "--seq-len", "16", "--seeds", "2", "--steps", "3", "--batch-size", "4",
                 "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--test-batches", "1", "--eval-every", "3",
                 "--workers", "1", "--out", str(gap), "--no-progress"]) == 0
    out = tmp_path / "probe"
    assert main(["probe", "--gap-dir", str(gap), "--out", str(out), *SETTINGS]) == 0
    r = json.loads((out / "results.json").read_text())
    assert set(r["models"]) == {"vanilla", "myopic"} and r["n_layer"] == 1
    van = r["models"]["vanilla"]
    assert van["n_seeds"] == 2 and set(r["runs"]) == {"vanilla-seed0", "vanilla-seed1", "myopic-seed0", "myopic-seed1"}
    for k in ("1", "2"):
        for layer in ("0", "1"):
            cell = van["future_token"][k][layer]
            assert 0 < cell["ce"] and 0 <= cell["top1"] <= 1 and cell["ce_ci95"] is not None
            c = van["causal"][k][layer]
            assert {"effect", "ci95"} <= c.keys() and c["erased_rank"] >= 1
        assert van["baseline"]["bigram_ce"][k] > 0 and van["baseline"]["unigram_ce"][k] > 0
    # the state after the final norm reaches no later position: erasing there cannot change the loss at t+2
    assert van["causal"]["2"]["1"]["effect"] == 0.0
    assert (out / "probe.png").exists()
    # a saved probe, reloaded, reproduces the cross-entropy results.json reports for it
    tensors = load_file(str(out / "probes" / "vanilla-seed0.safetensors"))
    meta = json.loads((out / "probes" / "vanilla-seed0.json").read_text())
    assert meta["classes"]["ids"] == tensors["classes.ids"].tolist()
    assert meta["result"] == r["runs"]["vanilla-seed0"]  # what --resume reuses
    # the same probes over the whole vocabulary, in the form `myopia explain --probes` reads
    assert {(e["offset"], e["layer"]) for e in meta["probes"]} == {(k, l) for k in (1, 2) for l in (0, 1)}
    vocab = load_file(str(out / "probes" / meta["probes"][0]["file"]))
    from myopia.measures.probe import probe_splits
    from myopia.runs import load_checkpoint_model

    cfg = json.loads((gap / "config.json").read_text())
    task = make_task(**cfg["task"])
    assert vocab["weight"].shape == (task.vocab_size, 16) and vocab["bias"].shape == (task.vocab_size,)
    model = load_checkpoint_model(gap / "runs" / "vanilla-seed0" / "checkpoint" / "model.safetensors", cfg["model"], task)
    splits = probe_splits(task, {**r["settings"]})
    h = layer_states(model, splits["test"][0], 16)[1][:, : 16 - 2 + 1]  # positions 0..T-K
    p = "future_token.k2.layer1"
    logits = ((h - tensors[p + ".mean"]) / tensors[p + ".scale"]) @ tensors[p + ".weight"] + tensors[p + ".bias"]
    class_of = torch.full((task.vocab_size,), len(meta["classes"]["ids"]), dtype=torch.long)
    class_of[tensors["classes.ids"]] = torch.arange(len(meta["classes"]["ids"]))
    z = class_of[splits["test"][1][:, 1: 1 + 16 - 2 + 1]]
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), z.reshape(-1))
    assert float(ce) == pytest.approx(r["runs"]["vanilla-seed0"]["future_token"]["2"]["1"]["ce"], rel=1e-4)

    # a stopped measurement resumes: models already probed are kept, the others are probed
    kept = (out / "probes" / "vanilla-seed0.safetensors").stat().st_mtime_ns
    (out / "results.json").unlink()
    (out / "probes" / "myopic-seed1.json").unlink()
    assert main(["probe", "--gap-dir", str(gap), "--out", str(out), "--resume", *SETTINGS]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["runs"] == r["runs"] and again["models"] == r["models"]
    assert (out / "probes" / "vanilla-seed0.safetensors").stat().st_mtime_ns == kept

    # one run of the built-in GPT; then an HF model directory with a text file
    assert main(["probe", "--checkpoint", str(gap / "runs" / "myopic-seed1"), "--out", str(tmp_path / "one"),
                 *SETTINGS, "--k-max", "1"]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert list(one["models"]) == ["myopic-seed1"] and one["models"]["myopic-seed1"]["n_seeds"] == 1

    from myopia.hf import make_tiny

    tiny = make_tiny(tmp_path / "tiny", "llama")
    assert main(["probe", "--model", str(tiny), "--data", str(data), "--seq-len", "16", "--out", str(tmp_path / "hf"),
                 "--no-causal", *SETTINGS, "--k-max", "1"]) == 0
    hf = json.loads((tmp_path / "hf" / "results.json").read_text())
    assert hf["n_layer"] == 2 and "causal" not in hf["models"]["tiny"]
    assert set(hf["models"]["tiny"]["future_token"]["1"]) == {"0", "1", "2"}


def test_probe_measures_feature_with_present_and_future_effects(tmp_path):
    from myopia.cli import main

    gap = tmp_path / "gap"
    assert main(["gap", "--task", "precache", "--seq-len", "8", "--window", "2", "--seeds", "1", "--steps", "3",
                 "--batch-size", "4", "--n-embd", "16", "--n-head", "2", "--test-batches", "1", "--eval-every", "3",
                 "--workers", "1", "--out", str(gap), "--no-progress"]) == 0
    g = json.loads((gap / "results.json").read_text())
    assert set(g["feature_r2"]) == {"vanilla", "myopic"} and set(g["feature_r2"]["vanilla"]["mean"]) == {"0", "1", "2"}
    out = tmp_path / "probe"
    assert main(["probe", "--checkpoint", str(gap / "runs" / "vanilla-seed0"), "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "results.json").read_text())["models"]["vanilla-seed0"]
    assert "future_token" not in m and set(m["feature_r2"]) == {"0", "1", "2"}
    # the gap measure's feature probe is this measure's probe, on the same data
    assert m["feature_r2"] == pytest.approx(g["feature_r2"]["vanilla"]["per_seed"][0], abs=1e-9)
    c = m["causal"]["feature"]["1"]
    assert c["effect"] == pytest.approx(c["present"]["mean"] + c["future"]["mean"], abs=1e-9)
    assert m["verdicts"]["feature"]["2"] in ("neither", "decodable, not used")


def test_probe_command_bad_input(tmp_path, capsys):
    from myopia.cli import main

    (tmp_path / "x").mkdir()
    rc = main(["probe", "--gap-dir", str(tmp_path / "x"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "config.json" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    rc = main(["probe", "--model", str(tmp_path / "x"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "--data" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_gap_finding_and_table_show_the_feature_probe_per_seed():
    from myopia.report.findings import finding

    stat = {"mean": 0.3, "ci95": [0.2, 0.4], "n": 2, "std": 0.01}
    data = {"task": {"name": "precache"}, "trivial_loss": 1.0, "vanilla_loss": [0.02, 0.04],
            "variants": {"kv": {"policy": "myopic", "myopic_loss": [0.99, 1.0], "gap": stat}},
            "feature_r2": {"vanilla": {"per_seed": [{"1": 0.951}, {"1": 0.97}]},
                           "myopic": {"per_seed": [{"1": 0.004}, {"1": -0.01}]}}}
    assert finding("gap", data).endswith(
        "The probe for the task's feature after block 1 (held-out R², per seed): vanilla 0.95/0.97, "
        "strict myopia (kv) 0.00/-0.01.")
    assert "The probe" not in finding("gap", {k: v for k, v in data.items() if k != "feature_r2"})
