"""The compute sweep: budget and compute rules, both myopic variants beside one shared
vanilla cell, k never extrapolated, resume and refusal on a tiny grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from myopia.measures.sweep import compute_sweep, size_shape, token_budget, training_compute
from myopia.report.figures import draw


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MYOPIA_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def test_sizes_budget_and_compute_rules():
    assert size_shape("L4-d128") == {"kind": "gpt", "n_layer": 4, "n_head": 4, "n_embd": 128}
    assert token_budget(400_000, 1000, 0.5) == 2000
    # Kaplan et al.: 2N + 2 n_layer n_ctx d forward FLOP per token, x3 with the backward pass
    assert training_compute(1000, 2, 64, 32, 10) == 3 * (2 * 1000 + 2 * 2 * 64 * 32) * 10
    with pytest.raises(ValueError, match="L<layers>-d<width>"):
        size_shape("big")


def assert_never_extrapolated(result: dict) -> None:
    """Every k is interpolated inside the measured compute range or is a bound equal to
    C_max/C (k above it) or C_min/C (k below it); no extrapolated value is stored anywhere."""
    assert "extrapolat" not in json.dumps(result).lower()
    compute = [s["compute"] for s in result["sizes"]]
    lo, hi = min(compute), max(compute)
    for variant, rows in result["multiplier"].items():
        assert [r["size"] for r in rows] == [s["size"] for s in result["sizes"]], variant
        for r in rows:
            c = r["compute"]
            if r["method"] == "interpolated":
                assert r["direction"] == "=", r
                for k in [r["value"], *(r["ci95"] or [])]:
                    assert lo * (1 - 1e-12) <= k * c <= hi * (1 + 1e-12), r
            else:
                assert r["method"] == "bound" and r["ci95"] is None, r
                assert r["value"] == pytest.approx(hi / c if r["direction"] == ">" else lo / c, rel=1e-12), r


def tiny_corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    words = "the cat sat on a mat while the dog ran to the park and back again".split()
    rng = np.random.default_rng(0)
    p.write_text("\n\n".join(" ".join(rng.choice(words, 60)) for _ in range(30)))
    return str(p)


def run_tiny(tmp_path, out, **kw):
    args = dict(sizes=["L1-d16", "L1-d32"], seeds=2, tokens=3000, token_exponent=0.5,
                train={"batch_size": 8, "eval_batches": 1, "test_batches": 2, "warmup_steps": 2},
                out_dir=out, workers=1, progress=False)
    args.update(kw)
    return compute_sweep({"name": "text", "data": tiny_corpus(tmp_path), "seq_len": 16}, **args)


def test_tiny_sweep_writes_results_resumes_and_never_overwrites(tmp_path):
    out = tmp_path / "sweep"
    r = run_tiny(tmp_path, out)
    saved = json.loads((out / "results.json").read_text())
    # both variants beside one vanilla cell per size and seed, all three with one budget
    assert len(saved["cells"]) == 2 * 2 * 3
    assert {c["policy"] for c in saved["cells"]} == {"vanilla", "myopic", "myopic-hidden"}
    assert saved["config"]["detach"] == ["kv", "hidden"]
    small, large = saved["sizes"]
    assert small["params"] < large["params"] and small["tokens"] < large["tokens"]
    shape = size_shape("L1-d32")
    assert large["compute"] == pytest.approx(6 * (large["params"] + shape["n_layer"] * 16 * shape["n_embd"])
                                             * large["tokens"])
    assert "n_layer * T * d" in saved["compute_rule"]
    for d in ("kv", "hidden"):
        v = large[d]
        assert len(v["myopic_loss"]) == len(large["vanilla_loss"]) == 2
        # the gap is paired by seed: the mean of the per-seed differences
        assert v["gap"]["mean"] == pytest.approx(np.mean(np.subtract(v["myopic_loss"], large["vanilla_loss"])))
        assert set(v["gap"]) >= {"mean", "ci95"}
        assert {"value", "ci95", "method", "direction", "size", "compute"} <= set(saved["multiplier"][d][0])
        assert saved["trend"][d].startswith(("k ", "fewer than 2"))
    assert saved["labels"] == {"kv": "myopic (strict, exact G(0))",
                               "hidden": "myopic (paper: W_K/W_V still trained by later losses)"}
    assert set(saved["fit"]) >= {"form", "loo_error", "alternatives"}
    assert_never_extrapolated(saved)
    draw(r, out)  # figures come from the result, in report/
    for name in ("loss_vs_compute.png", "gap_vs_size.png", "multiplier.png"):
        assert (out / name).stat().st_size > 1000

    # rerun: finished cells are reused untouched; a removed cell is retrained alone
    cells = sorted((out / "runs").iterdir())
    stamp = {c.name: (c / "result.json").stat().st_mtime_ns for c in cells}
    metrics = {c.name: (c / "metrics.jsonl").read_text() for c in cells}
    import shutil

    shutil.rmtree(cells[0])
    r2 = run_tiny(tmp_path, out)
    for c in cells[1:]:
        assert (c / "result.json").stat().st_mtime_ns == stamp[c.name]
        assert (c / "metrics.jsonl").read_text() == metrics[c.name]
    assert (cells[0] / "result.json").exists()
    assert [c["test_loss"] for c in r2.cells] == [c["test_loss"] for c in r.cells]  # same seed, same data: same result

    # another config in the same directory is refused, and nothing is touched
    with pytest.raises(ValueError, match="different config.*differs in: tokens.*another --out"):
        run_tiny(tmp_path, out, tokens=6000)
    for c in cells[1:]:
        assert (c / "result.json").stat().st_mtime_ns == stamp[c.name]

    # one variant alone: its vanilla cell is the same run (same init, data order, budget)
    one = run_tiny(tmp_path, tmp_path / "hidden", detach="hidden", seeds=[0]).to_dict()
    assert set(one["multiplier"]) == set(one["labels"]) == {"hidden"} and "kv" not in one["sizes"][0]
    assert one["sizes"][1]["vanilla_loss"] == large["vanilla_loss"][:1]
    assert one["sizes"][1]["hidden"]["myopic_loss"] == large["hidden"]["myopic_loss"][:1]
    assert_never_extrapolated(one)


def test_sweep_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="at least 2 model sizes"):
        run_tiny(tmp_path, tmp_path / "a", sizes=["L1-d16"])
    with pytest.raises(ValueError, match="variant twice"):
        run_tiny(tmp_path, tmp_path / "a", detach="kv,kv")
    with pytest.raises(ValueError, match="detach"):
        run_tiny(tmp_path, tmp_path / "a", detach="kv,future")
    with pytest.raises(ValueError, match="regression task"):
        compute_sweep("precache", out_dir=tmp_path / "b", progress=False)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no sweep"):
        run_tiny(tmp_path, tmp_path / "c")
