"""benchmarks/step_time.py runs end to end (tiny sizes) and writes the documented JSON.

Only the schema is checked: timings on a shared CPU say nothing in a test.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_time.py"


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_step_time_benchmark_quick_writes_ratio_json(tmp_path):
    out = tmp_path / "step_time.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--lengths", "16", "32", "--rounds", "2", "--threads", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "myopic_fast" in proc.stdout and "time ratio" in proc.stdout  # the printed table

    result = json.loads(out.read_text())
    assert {"T16", "T32", "machine", "config"} <= set(result)
    for key in ("T16", "T32"):
        entry = result[key]
        assert _finite_positive(entry["vanilla"]["step_s"])
        assert isinstance(entry["vanilla"]["peak_mib"], float) and math.isfinite(entry["vanilla"]["peak_mib"])
        for mode in ("myopic_fast", "myopic_reference"):
            assert _finite_positive(entry[mode]["time_ratio"]), (key, mode)
            assert entry[mode]["cpu_time_ratio"] >= 0, (key, mode)
            mem_ratio = entry[mode]["mem_ratio"]  # None only if vanilla's peak is below one page
            assert mem_ratio is None or (isinstance(mem_ratio, (int, float)) and mem_ratio >= 0), (key, mode)
            lo, hi = entry[mode]["time_ratio_p25_p75"]
            assert lo <= entry[mode]["time_ratio"] <= hi
        assert all(len(entry["raw_step_s"][m]) == 2 for m in ("vanilla", "myopic_fast", "myopic_reference"))
        # the attention path each row ran: CPU float32 at T <= 64 is the short-context path
        assert [entry[m]["path"] for m in ("vanilla", "myopic_fast", "myopic_reference")] == ["sdpa", "short", "reference"]
    machine = result["machine"]
    assert machine["torch_threads"] == 1 and machine["cores_available"] >= 1
    assert result["config"]["quick"] is True


def test_step_time_benchmark_rejects_bad_length(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--lengths", "1", "--json", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "--lengths" in proc.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_step_time_benchmark_on_cuda_names_the_triton_path(tmp_path):
    """On CUDA the myopic row runs the Triton path when triton is installed (else the correction term)."""
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--device", "cuda", "--dtype", "bfloat16", "--lengths", "128",
         "--rounds", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    entry = json.loads(out.read_text())["T128"]
    want = "triton" if importlib.util.find_spec("triton") is not None else "correction"
    assert entry["myopic_fast"]["path"] == want and want in proc.stdout
    assert _finite_positive(entry["myopic_fast"]["time_ratio"]) and entry["vanilla"]["peak_mib"] > 0
