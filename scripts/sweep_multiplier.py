"""The compute multiplier of the committed CPU sweeps, read off the measured curves.

Reads the cells of ``docs/sweep/results.json`` (strict myopia) and
``docs/sweep/hidden/results.json`` (the paper's variant) and writes, per variant and measured
size, k with L_myopic(k·C) = L_vanilla(C) — interpolated where the vanilla loss lies inside
the measured myopic range, else a bound — with an interval over seeds and fit form
(:mod:`myopia.measures.multiplier`), and the fit-form comparison. No retraining.

    python scripts/sweep_multiplier.py docs/results/sweep-multiplier/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from myopia.measures.multiplier import compare_forms, multipliers, trend
from myopia.results import atomic_write_json, provenance

SWEEPS = {"kv": "docs/sweep/results.json", "hidden": "docs/sweep/hidden/results.json"}


def variant(path: str) -> dict:
    data = json.loads(Path(path).read_text())
    cells = data["cells"]
    sizes = sorted({c["size"] for c in cells}, key=lambda z: next(c["compute"] for c in cells if c["size"] == z))
    seeds = sorted({c["seed"] for c in cells})
    loss = {(c["size"], c["mode"], c["seed"]): c["test_loss"] for c in cells}
    compute = np.array([next(c["compute"] for c in cells if c["size"] == z) for z in sizes])
    van = np.array([[loss[(z, "vanilla", s)] for s in seeds] for z in sizes])
    myo = np.array([[loss[(z, "myopic", s)] for s in seeds] for z in sizes])
    rows = multipliers(compute, van, myo)
    for z, r in zip(sizes, rows):
        r["size"] = z
    return {"source": path, "sizes": sizes, "seeds": seeds, "multiplier": rows,
            "fit": compare_forms(compute, van.mean(1), myo.mean(1)), "trend": trend(rows)}


def main(out: str) -> None:
    result = {"measure": "sweep-multiplier", "variants": {v: variant(p) for v, p in SWEEPS.items()},
              "labels": {"kv": "myopic (strict, exact G(0))", "hidden": "myopic (paper: W_K/W_V still trained by later losses)"},
              "provenance": provenance()}
    atomic_write_json(out, result)
    for v, r in result["variants"].items():
        print(result["labels"][v])
        for row in r["multiplier"]:
            ci = "" if row["ci95"] is None else f" [{row['ci95'][0]:.3g}, {row['ci95'][1]:.3g}]"
            print(f"  {row['size']:>8}  C={row['compute']:.2e}  k {row['direction']} {row['value']:.3g}{ci}  ({row['method']})")
        print("  fit form by leave-one-size-out:", r["fit"]["form"], "; ", r["trend"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/results/sweep-multiplier/results.json")
