"""A `myopia gap` run under torchrun survives SIGKILL: first of one rank (rank 1, in the
vanilla run), then of every process at once (torchrun and both ranks, in the myopic run);
`--resume` under torchrun then ends with exactly the numbers of an uninterrupted torchrun run.

Linux only: the ranks are found through /proc (torchrun's children and their RANK).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
GAP = ["gap", "--task", "precache-read", "--seq-len", "8", "--seeds", "1", "--steps", "60", "--batch-size", "4",
       "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--warmup-steps", "2", "--eval-every", "20",
       "--eval-batches", "1", "--test-batches", "2", "--checkpoint-every", "3", "--workers", "1", "--no-progress"]

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the ranks through /proc (Linux)")


def start(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "myopia.cli",
           *GAP, "--out", str(out), *extra]
    # a session of its own, so that "kill all" reaches torchrun and both ranks at once
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def rows(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except OSError:
        return 0


def wait_for_rows(proc: subprocess.Popen, path: Path, n: int) -> None:
    deadline = time.monotonic() + 240
    while rows(path) < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended before {path} had {n} rows; lower n: {proc.stderr.read()[-2000:]}"


def rank_pid(root: int, rank: int) -> int:
    """The process under ``root`` whose environment says RANK=rank (a torchrun worker)."""
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"LOCAL_WORLD_SIZE=2" in env and pid != root:
            return pid
        todo.extend(int(c) for c in children)
    raise AssertionError(f"no rank {rank} under process {root}")


def test_sigkill_of_one_rank_then_of_all_then_resume_gives_the_uninterrupted_numbers(tmp_path):
    ref = start(tmp_path / "ref")  # the uninterrupted run, alongside
    out = tmp_path / "run"

    proc = start(out)
    wait_for_rows(proc, out / "runs" / "vanilla-seed0" / "metrics.jsonl", 10)
    os.kill(rank_pid(proc.pid, 1), signal.SIGKILL)  # one rank dies; torchrun stops the other
    assert proc.wait(timeout=120) != 0

    proc = start(out, "--resume")
    wait_for_rows(proc, out / "runs" / "myopic-seed0" / "metrics.jsonl", 25)
    os.killpg(proc.pid, signal.SIGKILL)  # everything at once: torchrun and both ranks
    proc.wait(timeout=120)
    assert not (out / "results.json").exists()

    final = start(out, "--resume")
    assert final.wait(timeout=240) == 0, final.stderr.read()[-3000:]
    assert ref.wait(timeout=240) == 0, ref.stderr.read()[-3000:]

    a, b = (json.loads((d / "results.json").read_text()) for d in (tmp_path / "ref", out))
    for key in ("vanilla_loss", "myopic_loss", "gap_per_seed", "vanilla_per_position", "myopic_per_position"):
        assert a[key] == b[key], key  # exactly: same world size, same data per rank, same checkpoints
    assert a["curves"] == b["curves"]
    for run in ("vanilla-seed0", "myopic-seed0"):
        steps = [json.loads(line)["step"] for line in (out / "runs" / run / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(1, 61)), run  # no duplicated or missing rows after the resumes
