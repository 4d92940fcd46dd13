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


NO_INTERVAL_ONE_VALUE = "one value (one seed): no interval"


def mean_ci95(values: list[float], bounds: tuple[float, float] | None = None) -> dict:
    """Mean and a two-sided 95% Student-t interval over independent values (seeds).

    With a single value there is no interval: ``ci95`` is None and ``note`` says why.
    ``bounds`` (lo, hi): the quantity cannot leave this range (a proportion, R² <= 1), so
    the interval is clipped to it."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = sum(values) / n
    if n == 1:  # strict JSON: no NaN; the reason travels with the missing interval
        return {"mean": mean, "ci95": None, "n": 1, "std": None, "note": NO_INTERVAL_ONE_VALUE}
    from scipy.stats import t

    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return {"mean": mean, "ci95": [lo, hi], "n": n, "std": std}


def format_ci(stat: dict, fmt: str = "+.4f") -> str:
    """``[lo, hi]`` of a :func:`mean_ci95` result, or the reason there is none — one
    convention for every table."""
    if stat.get("ci95") is None:
        return f"[no interval: {stat.get('note') or 'n/a'}]"
    lo, hi = stat["ci95"]
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


def write_config(out: Path, config: dict) -> None:
    """Write ``out/config.json``; a resumed directory must have been started with the same config."""
    path = Path(out) / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        new = json.loads(json.dumps(config, default=_jsonable))
        if old != new:
            if isinstance(old, dict) and old.get("measure") != new.get("measure"):
                what = f"a {old.get('measure', 'different')} measurement, not {new.get('measure')}"
            else:
                keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                what = f"a measurement made with a different config (differs in: {', '.join(keys)})"
            raise ValueError(
                f"{path.parent} holds {what}; rerun with the same settings to resume it, use another --out, "
                f"or --overwrite to replace it"
            )
    atomic_write_json(path, config)


class OutputDirExists(FileExistsError, ValueError):
    """An output path that may not be written: exists, is a file, or holds something else."""


def prepare_out_dir(out: str | Path, *, resume: bool, overwrite: bool, measure: str = "measurement") -> Path:
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
        elif resume and not (out / "config.json").exists():
            raise OutputDirExists(
                f"{out} is not empty and holds no {measure} (no config.json); choose another --out"
            )
        elif not resume:
            raise OutputDirExists(
                f"output directory {out} already exists and is not empty; pass --resume to continue it "
                f"or --overwrite to replace it (or choose another --out)"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out
