"""The training loop: determinism, resume after a kill, NaN handling, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from myopia import GPT, GPTConfig, GradientPolicy, TrainConfig, make_task, train
from myopia.train import NonFiniteLossError, lr_at


def small(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=16, n_in=2, n_out=1, n_layer=1, n_head=2, n_embd=16))


CFG = dict(steps=30, batch_size=8, eval_every=10, eval_batches=1, test_batches=2, checkpoint_every=10, warmup_steps=5)


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seed_gives_same_init_and_data_for_vanilla_and_myopic():
    a, b = small(3), small(3)
    assert torch.equal(params(a), params(b))
    task = make_task("precache")
    x1, y1 = task.batch("train", 5, 4, stream=3)
    x2, y2 = task.batch("train", 5, 4, stream=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = task.batch("train", 5, 4, stream=4)
    assert not torch.equal(x1, x3)  # another seed, another data order
    v1, _ = task.batch("val", 0, 4, stream=3)
    v2, _ = task.batch("val", 0, 4, stream=4)
    assert torch.equal(v1, v2)  # held-out data is shared by all runs


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    task = make_task("precache")
    cfg = TrainConfig(**CFG)
    ref_model = small()
    ref = train(ref_model, task, GradientPolicy(horizon=0), cfg, out_dir=tmp_path / "ref", progress=False)

    class Killed(Exception):
        pass

    def kill_at_25(step, model, x, y):
        if step == 25:
            raise Killed()

    with pytest.raises(Killed):
        train(small(), task, GradientPolicy(horizon=0), cfg, out_dir=tmp_path / "run", progress=False,
              callbacks=[(1, kill_at_25)])
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 20
    resumed_model = small(seed=99)  # different init: everything must come from the checkpoint
    res = train(resumed_model, task, GradientPolicy(horizon=0), cfg, out_dir=tmp_path / "run", progress=False)
    assert torch.equal(params(resumed_model), params(ref_model))
    assert res.test_loss == ref.test_loss
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))  # no duplicated or missing rows after the resume


def test_finished_run_is_reused_not_retrained(tmp_path):
    task = make_task("precache")
    cfg = TrainConfig(**CFG)
    first = train(small(), task, GradientPolicy(), cfg, out_dir=tmp_path, progress=False)
    mtime = (tmp_path / "result.json").stat().st_mtime_ns
    model = small(seed=5)
    again = train(model, task, GradientPolicy(), cfg, out_dir=tmp_path, progress=False)
    assert again.test_loss == first.test_loss
    assert (tmp_path / "result.json").stat().st_mtime_ns == mtime
    assert (tmp_path / "checkpoint" / "model.safetensors").exists()


def test_nan_loss_stops_and_names_the_step():
    class NanAtStep3:
        def __init__(self):
            self.task = make_task("precache")

        def __getattr__(self, name):
            return getattr(self.task, name)

        def batch(self, split, index, batch_size, stream=0):
            x, y = self.task.batch(split, index, batch_size, stream)
            if split == "train" and index == 3:
                y = y * float("nan")
            return x, y

    with pytest.raises(NonFiniteLossError, match="at step 3"):
        train(small(), NanAtStep3(), GradientPolicy(), TrainConfig(**CFG), progress=False)


def test_learning_rate_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) < 0.11 and lr_at(99, cfg) >= 0.1
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 99))


def test_checkpoint_of_another_model_is_refused(tmp_path):
    task = make_task("precache")
    cfg = TrainConfig(**{**CFG, "steps": 30})
    def stop(*args):
        raise InterruptedError("killed")

    with pytest.raises(InterruptedError):
        train(small(), task, GradientPolicy(), cfg, out_dir=tmp_path, progress=False, callbacks=[(15, stop)])
    torch.manual_seed(0)
    other = GPT(GPTConfig(block_size=16, n_in=2, n_out=1, n_layer=2, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="does not match this model"):
        train(other, task, GradientPolicy(), cfg, out_dir=tmp_path, progress=False)


SELECT = dict(CFG, eval_every=5, lr=1e-2)  # on breadcrumbs, seed 0: val falls to a minimum at step 10, then rises


def test_select_best_returns_the_lowest_validation_weights(tmp_path):
    from myopia.train import evaluate

    task = make_task("breadcrumbs")
    cfg = TrainConfig(**SELECT)
    model = small()
    res = train(model, task, GradientPolicy(), cfg, out_dir=tmp_path / "best", progress=False, select_best=True)
    vals = {r["step"]: r["val_loss"] for r in res.curve if "val_loss" in r}
    assert sorted(vals) == [0, 5, 10, 15, 20, 25, 30]  # step 0 is a candidate
    assert res.selected_step == min(vals, key=vals.get) and 0 < res.selected_step < 30  # an interior minimum
    assert res.selected_val_loss == vals[res.selected_step]
    # the returned model is the selected one: its val loss is the selected one, its test loss the result's
    assert evaluate(model, task, batches=cfg.eval_batches, batch_size=cfg.batch_size)[0] == res.selected_val_loss
    assert evaluate(model, task, split="test", batches=cfg.test_batches, batch_size=cfg.batch_size)[0] == res.test_loss
    last = small()
    plain = train(last, task, GradientPolicy(), cfg, progress=False)
    assert plain.selected_step is None and not torch.equal(params(last), params(model))  # selection changed weights
    # a finished run hands back the selected weights
    again = small(seed=7)
    train(again, task, GradientPolicy(), cfg, out_dir=tmp_path / "best", progress=False, select_best=True)
    assert torch.equal(params(again), params(model))


def test_select_best_keeps_the_starting_weights_when_training_only_hurts():
    task = make_task("precache-read")  # K = 2: lr 0.1 wrecks this small model at every evaluated step
    cfg = TrainConfig(**{**SELECT, "lr": 0.1})  # a destructive step size: every evaluated step is worse than step 0
    model = small()
    start = params(model).clone()
    res = train(model, task, GradientPolicy(), cfg, progress=False, select_best=True)
    assert res.selected_step == 0 and torch.equal(params(model), start)
    assert all(r["val_loss"] > res.selected_val_loss for r in res.curve if "val_loss" in r and r["step"] > 0)


def test_select_best_resumes_to_the_same_selection(tmp_path):
    task = make_task("breadcrumbs")
    cfg = TrainConfig(**SELECT)
    ref_model = small()
    ref = train(ref_model, task, GradientPolicy(), cfg, out_dir=tmp_path / "ref", progress=False, select_best=True)

    def kill_at_25(step, *args):
        if step == 25:
            raise InterruptedError("killed")

    with pytest.raises(InterruptedError):
        train(small(), task, GradientPolicy(), cfg, out_dir=tmp_path / "run", progress=False, select_best=True,
              callbacks=[(1, kill_at_25)])
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 20 and state["best"]["step"] == ref.selected_step  # the best weights travel along
    resumed = small(seed=99)
    res = train(resumed, task, GradientPolicy(), cfg, out_dir=tmp_path / "run", progress=False, select_best=True)
    assert torch.equal(params(resumed), params(ref_model))
    assert (res.selected_step, res.test_loss) == (ref.selected_step, ref.test_loss)
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(0, 31))
