"""The transformer-bigram baseline: the past is not read, and `myopia gap --baseline bigram`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from myopia import GPT, GPTConfig, GradientPolicy


def tiny(bigram: bool, **kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=9, n_layer=2, n_head=2, n_embd=16, bigram=bigram, **kw)).double()


@pytest.mark.parametrize("policy", [GradientPolicy(), GradientPolicy(horizon=0, detach="hidden")])
def test_output_at_t_does_not_depend_on_earlier_inputs(policy):
    model = tiny(True)
    x = torch.randint(0, 11, (3, 9))
    out = model(x, policy=policy)
    for t in range(1, 9):
        for trial in range(3):  # perturb every earlier input at once, several ways
            x2 = x.clone()
            x2[:, :t] = torch.randint(0, 11, (3, t), generator=torch.Generator().manual_seed(10 * t + trial))
            torch.testing.assert_close(model(x2, policy=policy)[:, t:], out[:, t:], rtol=0, atol=1e-12)
    # the control: the same weights reading the past do depend on it
    reader = tiny(False)
    reader.load_state_dict(model.state_dict())
    x2 = x.clone()
    x2[:, 0] = (x[:, 0] + 1) % 11
    assert (reader(x2)[:, -1] - reader(x)[:, -1]).abs().max() > 1e-6


def test_bigram_attention_is_the_paper_definition():
    """Zero past keys and values: y_t = P_tt v_t with P_tt = exp(s_tt) / (exp(s_tt) + t)."""
    model = tiny(True, bias=False)
    attn = model.transformer.h[0].attn
    h = torch.randn(2, 9, 16, dtype=torch.float64)
    q, k, v = (attn._heads(t) for t in attn.c_attn(h).split(16, dim=2))  # (B, nh, T, hs)
    s = (q * k).sum(-1, keepdim=True) / math.sqrt(q.shape[-1])  # (B, nh, T, 1)
    t = torch.arange(9, dtype=torch.float64).view(1, 1, 9, 1)
    y = torch.sigmoid(s - torch.log(t.clamp(min=1e-300))) * v  # exp(s)/(exp(s)+t); t=0 gives 1
    expect = attn.c_proj(y.transpose(1, 2).reshape(2, 9, 16))
    torch.testing.assert_close(attn(h, GradientPolicy()), expect)


def test_bigram_refuses_a_frozen_past():
    model = tiny(True)
    x = torch.randint(0, 11, (1, 9))
    with pytest.raises(ValueError, match="reads no past"):
        model(x, past=tiny(False).past_states(x))


TINY = ["--steps", "12", "--batch-size", "4", "--eval-every", "6", "--eval-batches", "1", "--test-batches", "2",
        "--n-embd", "16", "--n-head", "2", "--n-layer", "1", "--no-progress", "--workers", "1"]


def test_gap_with_bigram_baseline_reports_its_losses_accuracy_and_positions(tmp_path, capsys):
    from myopia.cli import main

    out = tmp_path / "gap"
    code = main(["gap", "--task", "multiply", "--fillers", "2", "--seeds", "2", "--detach", "kv,hidden",
                 "--baseline", "bigram", "--out", str(out), *TINY])
    stdout = capsys.readouterr().out
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert len(res["bigram_loss"]) == 2 and res["baseline"] == "bigram"
    paired = [b - v for b, v in zip(res["bigram_loss"], res["vanilla_loss"])]
    assert res["past_benefit"]["mean"] == pytest.approx(sum(paired) / 2)
    assert set(res["accuracy"]) == {"vanilla", "myopic", "myopic-hidden", "bigram"}
    for acc in res["accuracy"].values():
        assert 0 <= acc["ci95"][0] <= acc["mean"] <= acc["ci95"][1] <= 1
        assert [s["n"] for s in acc["seeds"]] == [8, 8]
    answer = res["position_gaps"]["answer"]
    assert answer["positions"] == list(range(res["task"]["fillers"] + 6 - 1, res["task"]["fillers"] + 6 + 3))
    spec = json.loads((out / "config.json").read_text())
    assert spec["baseline"] == "bigram"
    saved = json.loads((out / "runs" / "bigram-seed0" / "result.json").read_text())
    assert saved["test_loss"] == res["bigram_loss"][0]
    assert "bigram" in stdout and "exact match" in stdout and "answer" in stdout


def test_bigram_baseline_needs_the_builtin_gpt():
    from myopia.measures.gap import myopia_gap

    with pytest.raises(ValueError, match="built-in GPT"):
        myopia_gap("precache", model={"kind": "hf", "path": "x"}, baseline="bigram", out_dir="unused")
    with pytest.raises(ValueError, match="unknown baseline"):
        myopia_gap("precache", baseline="unigram", out_dir="unused")


def test_cli_unknown_baseline_is_one_clear_line(tmp_path, capsys):
    from myopia.cli import main

    code = main(["gap", "--baseline", "unigram", "--out", str(tmp_path / "x"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "unknown baseline 'unigram'; use one of bigram" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
