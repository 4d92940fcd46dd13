"""Typed results on disk: atomic JSON, provenance, confidence intervals, output dirs.

Every results.json carries the config that made it and a ``provenance`` block (package,
torch and Python versions, git revision, time, host), so a figure can always be traced
back to the exact code and settings.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import torch


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(o):
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, Path):
        return str(o)
    if torch.is_tensor(o):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")


def git_revision() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict:
    from myopia import __version__

    return {
        "myopia": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_revision": git_revision(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
    }


def mean_ci95(values: list[float]) -> dict:
    """Mean and a two-sided 95% Student-t interval over independent values (seeds)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "ci95": [float("nan"), float("nan")], "n": 1, "std": float("nan")}
    from scipy.stats import t

    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n, "std": std}


def write_config(out: Path, config: dict) -> None:
    """Write ``out/config.json``; a resumed directory must have been started with the same config."""
    path = Path(out) / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(config, default=_jsonable)):
            raise ValueError(
                f"{path.parent} holds a measurement made with a different config; "
                f"use another --out, or --overwrite to replace it"
            )
    atomic_write_json(path, config)


class OutputDirExists(FileExistsError):
    pass


def prepare_out_dir(out: str | Path, *, resume: bool, overwrite: bool, marker: str = "results.json") -> Path:
    """Create ``out``; refuse to touch an existing non-empty one unless told to.

    ``resume``: keep what is there (finished runs are reused, unfinished ones continue).
    ``overwrite``: delete it first.
    """
    out = Path(out)
    if resume and overwrite:
        raise ValueError("choose either --resume or --overwrite, not both")
    if out.exists() and not out.is_dir():
        raise OutputDirExists(f"output path {out} exists and is not a directory; choose another --out")
    if out.exists() and any(out.iterdir()):
        if overwrite:
            shutil.rmtree(out)
        elif not resume:
            raise OutputDirExists(
                f"output directory {out} already exists and is not empty; pass --resume to continue it "
                f"or --overwrite to replace it (or choose another --out)"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out
