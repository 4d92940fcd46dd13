"""Several measures trained in one pool (`train_plans`, what `myopia demo` does) give exactly
the results each gives alone, and a directory that holds something else is refused before
anything is written."""

from __future__ import annotations

import json

import pytest

from myopia.cli import main
from myopia.measures.gap import gap_plan, myopia_gap
from myopia.measures.scaffold import run_plan, train_plans
from myopia.train import TrainConfig

MODEL = {"kind": "gpt", "n_layer": 1, "n_head": 2, "n_embd": 16}
TRAIN = TrainConfig(steps=8, batch_size=4, eval_every=4, eval_batches=1, test_batches=2, threads=1)
ROWS = {"precache": "precache", "breadcrumbs": "breadcrumbs"}


def plans(root):
    return {root / name: gap_plan(task, model=MODEL, train=TRAIN, seeds=2, detach=["kv", "hidden"])
            for name, task in ROWS.items()}


def test_pooled_runs_equal_separate_runs(tmp_path):
    pooled = plans(tmp_path / "pooled")
    train_plans(pooled, workers=2, progress=False)
    for out, plan in pooled.items():
        finished = sorted(p.parent.name for p in (out / "runs").glob("*/result.json"))
        assert finished == sorted(s.key for s in plan.specs)  # every run in its own measure's directory
    together = {out.name: run_plan(plan, out, resume=True, progress=False) for out, plan in pooled.items()}
    for name, task in ROWS.items():
        alone = myopia_gap(task, model=MODEL, train=TRAIN, seeds=2, detach=["kv", "hidden"],
                           out_dir=tmp_path / "alone" / name, workers=1, progress=False)
        # same seeds, data order and one thread per run: the same numbers, not just close ones
        assert together[name].vanilla_loss == alone.vanilla_loss
        assert together[name].variants["hidden"]["myopic_loss"] == alone.variants["hidden"]["myopic_loss"]
        assert together[name].gap == alone.gap


def test_a_foreign_directory_is_refused_before_anything_is_written(tmp_path):
    root = tmp_path / "demo"
    ps = plans(root)
    other = root / "breadcrumbs"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no gap"):
        train_plans(ps, workers=1, progress=False)
    assert not (root / "precache").exists()  # the first row was not started either
    assert (other / "notes.txt").read_text() == "mine"


def test_a_directory_with_another_config_is_refused(tmp_path):
    root = tmp_path / "demo"
    ps = plans(root)
    (root / "breadcrumbs").mkdir(parents=True)
    (root / "breadcrumbs" / "config.json").write_text(json.dumps({"measure": "gap", "seeds": [7]}))
    with pytest.raises(ValueError, match="different config"):
        train_plans(ps, workers=1, progress=False)
    assert not (root / "precache").exists()


def test_demo_overwrite_refuses_a_directory_with_foreign_files(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    code = main(["demo", "--out", str(out), "--overwrite", "--steps", "2", "--text-steps", "2", "--no-progress"])
    assert code == 2
    assert "holds more than a demo (thesis.tex)" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "keep me"
