"""A run killed with SIGKILL at any moment resumes to exactly the numbers of an uninterrupted
run; a truncated checkpoint is detected and named, and the previous good one is used."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from myopia.train import CorruptCheckpointError, latest_checkpoint

SRC = str(Path(__file__).resolve().parents[1] / "src")
SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from myopia import GPT, GPTConfig, GradientPolicy, TrainConfig, make_task, train
task = make_task("precache-read", seq_len=8)
torch.manual_seed(0)
model = GPT(GPTConfig(block_size=8, n_in=2, n_out=1, n_layer=1, n_head=2, n_embd=16))
cfg = TrainConfig(steps=90, batch_size=4, eval_every=30, eval_batches=1, test_batches=2, checkpoint_every=3,
                  warmup_steps=2)
train(model, task, GradientPolicy(horizon=0), cfg, out_dir=sys.argv[1], progress=False)
"""


def start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], env=env)


def rows(out: Path) -> int:
    try:
        return len((out / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def test_sigkill_at_several_moments_then_resume_gives_the_uninterrupted_numbers(tmp_path):
    ref = tmp_path / "ref"
    assert start(ref).wait(timeout=120) == 0
    run = tmp_path / "run"
    for n_rows in (4, 31, 58):  # kill once metrics show this many steps: inside different checkpoint periods
        proc = start(run)
        deadline = time.monotonic() + 120
        while rows(run) < n_rows and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed; lower n_rows"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (run / "result.json").exists()
    assert start(run).wait(timeout=120) == 0
    a, b = (json.loads((d / "result.json").read_text()) for d in (ref, run))
    assert a["test_loss"] == b["test_loss"] and a["test_loss_per_position"] == b["test_loss_per_position"]
    assert [r["train_loss"] for r in a["curve"]] == [r["train_loss"] for r in b["curve"]]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 91))  # no duplicated or missing rows after three resumes
    assert (ref / "checkpoint" / "model.safetensors").read_bytes() == (run / "checkpoint" / "model.safetensors").read_bytes()


def _checkpointed_run(tmp_path) -> Path:
    from myopia import GPT, GPTConfig, GradientPolicy, TrainConfig, make_task, train

    task = make_task("precache-read", seq_len=8)
    model = GPT(GPTConfig(block_size=8, n_in=2, n_out=1, n_layer=1, n_head=2, n_embd=16))
    cfg = TrainConfig(steps=6, batch_size=4, eval_every=6, eval_batches=1, test_batches=1, checkpoint_every=3,
                      warmup_steps=1)
    train(model, task, GradientPolicy(), cfg, out_dir=tmp_path / "run", progress=False)
    return tmp_path / "run"


def test_truncated_checkpoint_is_named_with_the_directory_to_delete(tmp_path):
    run = _checkpointed_run(tmp_path)
    f = run / "checkpoint" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(CorruptCheckpointError, match=f"Delete {run}"):
        latest_checkpoint(run)


def test_a_kill_between_the_renames_falls_back_to_the_previous_checkpoint(tmp_path):
    run = _checkpointed_run(tmp_path)
    # the state a kill mid-swap leaves: the previous checkpoint moved aside, the new one half-written
    os.replace(run / "checkpoint", run / "checkpoint.prev")
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / "model.safetensors").write_bytes(b"partial")
    path, meta = latest_checkpoint(run)
    assert path.name == "checkpoint.prev" and meta["step"] == 6
