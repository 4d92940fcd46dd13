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


NO_INTERVAL_ONE_VALUE = "single value (one seed): no interval"


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


def bootstrap_ci(values: list[float], *, n: int = 2000, seed: int = 0) -> dict:
    """Mean and a 95% percentile-bootstrap interval of the mean over independent values
    (seeds). The interval lies within [min, max] of the values, so a quantity bounded below
    (a loss share, a probability) gets a bounded interval — unlike a t-interval on 3 seeds.
    With a single value there is no interval (``ci95`` None and ``note``)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if v.size == 1:
        return {"mean": float(v[0]), "ci95": None, "n": 1, "note": NO_INTERVAL_ONE_VALUE, "method": "bootstrap"}
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (n, v.size))].mean(1)
    return {"mean": float(v.mean()), "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
            "n": int(v.size), "method": "percentile bootstrap over seeds"}


def wilson95(successes: int, n: int) -> list[float]:
    """Two-sided 95% Wilson score interval of a proportion: bounded in [0, 1] and sensible at
    0 or n successes, where the normal interval collapses."""
    if n < 1:
        raise ValueError("wilson95 needs at least one trial")
    z = 1.959963984540054
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no rounding residue
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return [lo, hi]


def proportion_over_seeds(correct: list[int], n: list[int], *, resamples: int = 4000, seed: int = 0) -> dict:
    """Mean over seeds of per-seed proportions correct[s] / n[s], with a 95% interval that
    covers both sources of uncertainty and stays in [0, 1]: a two-level percentile bootstrap
    (seeds with replacement, then each seed's n[s] items with replacement), widened where
    needed to the Wilson interval of the pooled items (a percentile bootstrap collapses to
    a point when every seed scores 0 or 1). With one seed the interval is that seed's Wilson
    interval (test items only) and ``note`` says so."""
    if not correct or len(correct) != len(n):
        raise ValueError("proportion_over_seeds needs one (correct, n) pair per seed")
    import numpy as np

    p = np.array(correct, dtype=float) / np.array(n, dtype=float)
    out = {"mean": float(p.mean()), "n": len(p), "per_seed": [float(v) for v in p]}
    if len(p) == 1:
        return {**out, "ci95": wilson95(correct[0], n[0]),
                "note": "one seed: Wilson interval over test sequences only, seed-to-seed spread unknown"}
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(p), size=(resamples, len(p)))  # resampled seeds
    inner = rng.binomial(np.array(n)[pick], p[pick]) / np.array(n)[pick]  # resampled items within each
    means = inner.mean(1)
    pooled = wilson95(sum(correct), sum(n))
    ci = [min(float(np.quantile(means, 0.025)), pooled[0]), max(float(np.quantile(means, 0.975)), pooled[1])]
    return {**out, "ci95": ci,
            "method": "two-level percentile bootstrap (seeds, then test sequences), at least the pooled Wilson interval"}


def format_ci(stat: dict, fmt: str = "+.4f") -> str:
    """``[lo, hi]`` of a :func:`mean_ci95` result, or the reason there is none — one
    convention for every table."""
    if stat.get("ci95") is None:
        return f"[{stat.get('note') or 'no interval'}]"
    lo, hi = stat["ci95"]
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


def format_share(stat: dict | float | None) -> str:
    """A share (e.g. loss / trivial loss) of a :func:`bootstrap_ci` or :func:`mean_ci95` result
    as ``mean [lo, hi]`` in percent (a plain number, as older results.json files hold, as
    itself); ``n/a`` when there is none."""
    if stat is None:
        return "n/a"
    if isinstance(stat, (int, float)):
        return f"{stat:.0%}"
    if stat.get("ci95") is None:
        return f"{stat['mean']:.0%}"
    lo, hi = stat["ci95"]
    return f"{stat['mean']:.0%} [{lo:.0%}, {hi:.0%}]"


def write_config(out: Path, config: dict) -> None:
    """Write ``out/config.json``; a resumed directory must have been started with the same config."""
    check_config(out, config)
    atomic_write_json(Path(out) / "config.json", config)


def check_config(out: Path, config: dict) -> None:
    """Refuse a directory whose ``config.json`` holds another measurement or another config."""
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


class OutputDirExists(FileExistsError, ValueError):
    """An output path that may not be written: exists, is a file, or holds something else."""


def prepare_out_dir(out: str | Path, *, resume: bool, overwrite: bool, measure: str = "measurement") -> Path:
    """Check ``out`` and create it. An existing non-empty directory is refused unless
    ``resume`` (keep it: finished runs are reused, unfinished ones continue) or ``overwrite``
    (the caller builds the new result elsewhere and swaps it in only when it is complete —
    see :func:`myopia.measures.scaffold.run_measure`; nothing is deleted here)."""
    out = Path(out)
    if resume and overwrite:
        raise ValueError("choose either --resume or --overwrite, not both")
    if out.exists() and not out.is_dir():
        raise OutputDirExists(f"output path {out} exists and is not a directory; choose another --out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        if resume and not (out / "config.json").exists():
            raise OutputDirExists(
                f"{out} is not empty and holds no {measure} (no config.json); choose another --out"
            )
        if not resume:
            raise OutputDirExists(
                f"output directory {out} already exists and is not empty; pass --resume to continue it "
                f"or --overwrite to replace it (or choose another --out)"
            )
    make_dir(out)
    return out


def replacement_dir(out: Path) -> Path:
    """A fresh, empty sibling ``.NAME.new`` of ``out`` to build a replacement in (what an
    earlier, failed replacement left there is removed); :func:`swap_in` puts it in place."""
    work = Path(out).with_name(f".{Path(out).name}.new")
    shutil.rmtree(work, ignore_errors=True)
    make_dir(work)
    return work


def swap_in(work: Path, out: Path) -> None:
    """Replace ``out`` by the complete ``work`` (renames: the old content is removed only
    once the new one is in place)."""
    old = Path(out).with_name(f".{Path(out).name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
    os.replace(work, out)
    shutil.rmtree(old, ignore_errors=True)


def make_dir(path: Path) -> None:
    """``mkdir -p`` with one clear error (read-only file system, no permission, a file in the way)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputDirExists(f"cannot create the output directory {path}: {e.strerror or e}; choose another --out") from None
