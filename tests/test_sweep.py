"""The compute sweep: power-law fit, compute multiplier, bootstrap, resume and refusal on a tiny grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from myopia.measures.sweep import (
    bootstrap_multipliers, compute_sweep, fit_and_multiplier, fit_power_law, multiplier, size_shape, token_budget,
)
from myopia.report.figures import draw

COMPUTE = np.array([1e9, 4e9, 1.6e10, 6.4e10])


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MYOPIA_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def test_power_law_fit_recovers_its_parameters():
    a, b = fit_power_law(COMPUTE, 30.0 * COMPUTE ** -0.1)
    assert a == pytest.approx(30.0, rel=1e-9) and b == pytest.approx(0.1, rel=1e-9)


def test_multiplier_of_a_shifted_curve_is_the_shift():
    # myopic needs k0 = 3x the compute for the same loss: L_m(C) = L_v(C / 3)
    van = 30.0 * COMPUTE ** -0.1
    myo = 30.0 * (COMPUTE / 3.0) ** -0.1
    fits, ks = fit_and_multiplier(COMPUTE, van[:, None], myo[:, None])
    assert ks == pytest.approx([3.0] * 4, rel=1e-9)
    assert multiplier(fits["vanilla"], fits["myopic"], 1e12) == pytest.approx(3.0, rel=1e-9)
    assert multiplier((30.0, 0.1), (5.0, 0.0), 1e10) is None  # a flat myopic curve never catches up


def test_bootstrap_over_seeds_brackets_the_truth_and_widens_with_noise():
    rng = np.random.default_rng(0)
    van = 30.0 * COMPUTE[:, None] ** -0.1 + 0.0 * rng.normal(size=(4, 5))
    myo = 30.0 * (COMPUTE[:, None] / 2.0) ** -0.1 + 0.0 * rng.normal(size=(4, 5))
    exact = bootstrap_multipliers(COMPUTE, van, myo, n=50)
    assert np.allclose(exact, 2.0)
    noisy = bootstrap_multipliers(COMPUTE, van + 0.02 * rng.normal(size=(4, 5)), myo + 0.02 * rng.normal(size=(4, 5)), n=200)
    lo, hi = np.percentile(noisy[:, -1], [2.5, 97.5])
    assert lo < 2.0 < hi and hi - lo > 0.1


def test_sizes_and_budget_rule():
    assert size_shape("L4-d128") == {"kind": "gpt", "n_layer": 4, "n_head": 4, "n_embd": 128}
    assert token_budget(400_000, 1000, 0.5) == 2000
    with pytest.raises(ValueError, match="L<layers>-d<width>"):
        size_shape("big")


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
    assert len(saved["cells"]) == 2 * 2 * 2
    assert {c["mode"] for c in saved["cells"]} == {"vanilla", "myopic"}
    small, large = saved["sizes"]
    assert small["params"] < large["params"] and small["tokens"] < large["tokens"]
    assert large["compute"] == pytest.approx(6 * large["params"] * large["tokens"])
    cm = saved["compute_multiplier"]
    assert set(cm) >= {"value", "ci95", "extrapolated"}
    if cm["value"] is not None:
        assert cm["extrapolated"] == (not small["compute"] <= cm["value"] * large["compute"] <= large["compute"])
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


def test_sweep_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="at least 2 model sizes"):
        run_tiny(tmp_path, tmp_path / "a", sizes=["L1-d16"])
    with pytest.raises(ValueError, match="regression task"):
        compute_sweep("precache", out_dir=tmp_path / "b", progress=False)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no sweep"):
        run_tiny(tmp_path, tmp_path / "c")
