"""Data-parallel training under torchrun (2 CPU processes, gloo) equals one process.

One torchrun launch (start-up dominates the cost) runs, in float64 so that only summation
order separates the two:

* one step's gradient under DDP, for vanilla and both myopic variants: the ranks' rows of
  the global batch, gradients averaged by DDP, against the single-process gradient of the
  whole batch (tolerance 1e-12: float64 rounding, far below any real difference);
* short ``train`` runs under DDP (vanilla and myopic): final held-out loss, per-position
  loss, training curve and final weights against the single-process runs;
* FSDP2 (``--parallel fsdp``): a run trained, checkpointed (sharded tensors gathered) and
  resumed (re-sharded) against the same sequence in one process.

A world size that does not divide the batch is refused before anything is written (checked
in-process with torchrun's environment variables).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SRC = str(Path(__file__).resolve().parents[1] / "src")
POLICIES = {"vanilla": {}, "myopic": {"horizon": 0}, "myopic-hidden": {"horizon": 0, "detach": "hidden"}}

# Shared by the torchrun workers and the single-process reference (exec'd in both).
COMMON = '''
import json, shutil, sys, torch
from pathlib import Path
from safetensors.torch import save_file
from myopia import GPT, GPTConfig, GradientPolicy, TrainConfig, make_task, train
from myopia import distributed

torch.set_num_threads(1)
POLICIES = %r


class Float64Task:
    """The precache task with float64 inputs and targets (a float64 model trains on it)."""

    def __init__(self):
        self.task = make_task("precache-read", seq_len=8)

    def __getattr__(self, name):
        return getattr(self.task, name)

    def batch(self, *args, **kw):
        x, y = self.task.batch(*args, **kw)
        return x.double(), y.double()


def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=8, n_in=2, n_out=1, n_layer=2, n_head=2, n_embd=16)).double()


def one_step_gradients(task):
    grads = {}
    x, y = task.batch("train", 0, 8, stream=0)
    for name, pol in POLICIES.items():
        m = model()
        step_model = distributed.data_parallel(m, "cpu")
        loss = task.loss(step_model(distributed.rows(x), policy=GradientPolicy(**pol)), distributed.rows(y)).mean()
        loss.backward()
        grads.update({f"{name}/{k}": p.grad for k, p in m.named_parameters()})
    return grads


CFG = dict(steps=8, batch_size=8, lr=3e-3, warmup_steps=2, eval_every=4, eval_batches=1, test_batches=2,
           checkpoint_every=4)


def runs(task, out):
    for name in ("vanilla", "myopic"):
        train(model(), task, GradientPolicy(**POLICIES[name]), TrainConfig(**CFG), out_dir=out / name, progress=False)
    # trained to step 4, then resumed to step 8 (the resumed run re-shards the checkpoint under FSDP2)
    half = dict(CFG, steps=4)
    train(model(), task, GradientPolicy(horizon=0), TrainConfig(**half), out_dir=out / "resumed", progress=False)
    if distributed.is_main():
        (out / "resumed" / "result.json").unlink()
    distributed.barrier()
    train(model(), task, GradientPolicy(horizon=0), TrainConfig(**CFG), out_dir=out / "resumed", progress=False)
''' % (POLICIES,)

WORKER = COMMON + '''
out = Path(sys.argv[1])
task = Float64Task()
grads = one_step_gradients(task)
if distributed.is_main():
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in grads.items()}, str(out / "grads.safetensors"))
runs(task, out / "ddp")
distributed.set_parallel("fsdp")
runs(task, out / "fsdp")
'''


def torchrun(script: Path, *args: str, nproc: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_process_ddp_and_fsdp_equal_one_process_float64(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = torchrun(script, str(tmp_path / "dist"))
    assert proc.returncode == 0, proc.stderr[-3000:]

    scope: dict = {}
    exec(COMMON, scope)  # the same models, task and runs, in this process
    task = scope["Float64Task"]()
    single = scope["one_step_gradients"](task)
    dist_grads = load_file(str(tmp_path / "dist" / "grads.safetensors"))
    assert set(dist_grads) == set(single)
    for key, g in single.items():
        torch.testing.assert_close(dist_grads[key], g, rtol=1e-12, atol=1e-14, msg=lambda m, k=key: f"{k}: {m}")
    # the myopic gradient really differs from the vanilla one here, so the check above can tell them apart
    assert not torch.allclose(single["vanilla/transformer.h.0.attn.c_attn.weight"],
                              single["myopic/transformer.h.0.attn.c_attn.weight"])

    scope["runs"](task, tmp_path / "single")
    for mode in ("ddp", "fsdp"):
        for name in ("vanilla", "myopic", "resumed"):
            a, b = _result(tmp_path / "single" / name), _result(tmp_path / "dist" / mode / name)
            where = f"{mode}/{name}"
            assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-10, abs=1e-13), where
            assert b["test_loss_per_position"] == pytest.approx(a["test_loss_per_position"], rel=1e-10, abs=1e-13), where
            assert [r["train_loss"] for r in b["curve"]] == pytest.approx([r["train_loss"] for r in a["curve"]],
                                                                       rel=1e-10, abs=1e-13), where
            wa = load_file(str(tmp_path / "single" / name / "checkpoint" / "model.safetensors"))
            wb = load_file(str(tmp_path / "dist" / mode / name / "checkpoint" / "model.safetensors"))
            assert set(wa) == set(wb), where
            for k in wa:
                torch.testing.assert_close(wb[k], wa[k], rtol=1e-10, atol=1e-12, msg=lambda m, k=k: f"{where} {k}: {m}")


def test_world_size_that_does_not_divide_the_batch_is_refused_before_anything_is_written(tmp_path, monkeypatch,
                                                                                          capsys):
    from myopia.cli import main

    monkeypatch.setenv("WORLD_SIZE", "3")  # what torchrun --nproc_per_node=3 sets
    monkeypatch.setenv("RANK", "0")
    out = tmp_path / "gap"
    code = main(["gap", "--task", "precache", "--seeds", "1", "--batch-size", "8", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "batch size 8 does not divide among the 3 processes" in err[0], err
    assert "multiple of 3" in err[0]
    assert not out.exists()
