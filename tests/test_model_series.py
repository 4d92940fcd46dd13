"""`myopia sweep --models`: the gap along a series of pretrained checkpoints (three tiny
Pythia-family models of different widths, made locally)."""

from __future__ import annotations

import json

import pytest
import torch

from myopia.cli import main
from myopia.hf import HFCausalLM, make_tiny
from tiny_runs import word_salad as corpus


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MYOPIA_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def test_series_of_three_models_reports_gap_against_size(tmp_path, capsys):
    sizes = ("L2-d48", "L1-d16", "L1-d32")  # given out of order: the result is sorted by size
    dirs = [make_tiny(tmp_path / s, "gpt_neox", seed=1, size=s) for s in sizes]
    out = tmp_path / "series"
    code = main(["sweep", "--models", ",".join(map(str, dirs)), "--data", corpus(tmp_path), "--seq-len", "16",
                 "--seeds", "2", "--steps", "6", "--batch-size", "4", "--lr", "1e-3", "--workers", "1",
                 "--no-progress", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    assert r["measure"] == "model_series" and r["detach"] == ["kv", "hidden"]
    assert [m["name"] for m in r["models"]] == ["L1-d16", "L1-d32", "L2-d48"]
    for m, d in zip(r["models"], sorted(dirs, key=lambda d: ("L1-d16", "L1-d32", "L2-d48").index(d.name))):
        assert m["family"] == "gpt_neox"
        assert m["params"] == HFCausalLM.from_pretrained(d).num_params()
        kv, hidden = m["variants"]["kv"], m["variants"]["hidden"]
        assert (kv["policy"], hidden["policy"]) == ("myopic", "myopic-hidden")
        for v in (kv, hidden):
            assert len(v["gap_per_seed"]) == 2 and v["gap"]["ci95"] is not None  # two seeds: an interval
            # paired by seed: the gap is myopic minus vanilla of the same data order
            assert v["gap_per_seed"] == pytest.approx([a - b for a, b in zip(v["myopic_loss"], m["vanilla_loss"])])
            assert all(g != 0 for g in v["gap_per_seed"])  # the myopic runs really trained differently
        assert kv["myopic_loss"] != hidden["myopic_loss"]  # strict and the paper's myopia are different runs
    assert [m["params"] for m in r["models"]] == sorted(m["params"] for m in r["models"])
    assert len({m["params"] for m in r["models"]}) == 3
    assert (out / "gap_vs_params.png").stat().st_size > 1000
    assert "L2-d48" in printed and "myopic-hidden gap" in printed
    assert len(list((out / "runs").iterdir())) == 3 * 2 * 3  # models x seeds x {vanilla, kv, hidden}


def test_series_bad_input_is_one_clear_line(tmp_path, capsys):
    one = make_tiny(tmp_path / "one", "gpt_neox", size="L1-d16")
    data = corpus(tmp_path)
    capsys.readouterr()  # what saving the model printed
    cases = [
        (["--models", str(one), "--data", data], "at least 2 models"),
        (["--models", f"{one},{one}"], "--data"),
        (["--models", f"{one},{one}", "--data", data, "--sizes", "L1-d16,L1-d32"], "--sizes applies to a sweep"),
        (["--sizes", "L1-d16,L1-d32", "--steps", "5"], "--steps applies to --models"),
        (["--models", f"{one},{tmp_path / 'missing'}", "--data", data], "missing"),
    ]
    for flags, message in cases:
        out = tmp_path / "o"
        assert main(["sweep", *flags, "--out", str(out), "--no-progress"]) == 2, flags
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (flags, err)
        assert not out.exists()
    with pytest.raises(ValueError, match="L<layers>-d<width>"):
        make_tiny(tmp_path / "bad", "gpt_neox", size="L1-d20")
