"""Summarise committed `myopia gap` outputs for the README: per myopic variant the losses, the
gap in nats and relative to the vanilla loss with 95% intervals over seeds, and with two
outputs the difference of their gaps.

    python scripts/gap_summary.py OUT.json NAME=GAP_DIR/results.json [NAME2=GAP_DIR2/results.json] [--reference rofin2026]

* Within one output the seeds are paired (same initialisation and data order for vanilla
  and myopic), so the gap and the relative gap gap_s / vanilla_s are Student-t intervals over
  the per-seed values (:func:`myopia.results.mean_ci95`).
* Between two outputs (e.g. two corpora) the seeds are independent, so the difference of
  the mean gaps NAME2 − NAME gets Welch's unequal-variance t interval
  (``scipy.stats.ttest_ind(equal_var=False)``), for nats and for the relative gap.
* ``--reference rofin2026`` adds the published numbers of Rofin, Naghiyev & Hahn
  (ICLR 2026, arXiv 2603.14087) for the row they are compared with. No retraining.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import ttest_ind

from myopia.policy import VARIANT_LABELS
from myopia.results import atomic_write_json, mean_ci95, provenance


# Rofin, Naghiyev & Hahn, ICLR 2026 (arXiv 2603.14087): TinyStories, 4 layers, d=128, 4 heads,
# T=64, 1000 steps at batch 256, lr 1e-3, 10 seeds; strict myopic attention (keys/values
# detached off the diagonal). Losses in nats per token of their tokenizer, mean ± their spread.
REFERENCES = {
    "rofin2026": {
        "source": "Rofin, Naghiyev & Hahn, ICLR 2026, arXiv 2603.14087",
        "data": "TinyStories", "model": {"n_layer": 4, "n_embd": 128, "n_head": 4, "seq_len": 64},
        "train": {"steps": 1000, "batch_size": 256, "lr": 1e-3}, "tokens_per_run": 1000 * 256 * 64,
        "seeds": 10, "variant": "kv",
        "vanilla": {"mean": 2.53, "pm": 0.10}, "myopic": {"mean": 3.29, "pm": 0.02},
    },
}


def summarize(path: str) -> dict:
    """One gap output: per variant the per-seed losses, gap and gap / vanilla with intervals."""
    data = json.loads(Path(path).read_text())
    van = data["vanilla_loss"]
    train, task = data["train"], data["task"]
    out = {
        "source": path, "task": task, "model": data["model"], "train": train, "seeds": data["seeds"],
        "tokens_per_run": train["steps"] * train["batch_size"] * task["seq_len"],
        "trivial_loss": data["trivial_loss"], "vanilla_loss": mean_ci95(van), "vanilla_per_seed": van, "variants": {},
    }
    for d, v in data["variants"].items():
        gaps = v["gap_per_seed"]
        rel = [g / b for g, b in zip(gaps, van)]
        out["variants"][d] = {
            "label": VARIANT_LABELS[d], "policy": v["policy"], "myopic_loss": mean_ci95(v["myopic_loss"]),
            "myopic_per_seed": v["myopic_loss"], "gap": mean_ci95(gaps), "gap_per_seed": gaps,
            "relative_gap": mean_ci95(rel),
            "relative_gap_per_seed": rel,
        }
    return out


def welch(a: list[float], b: list[float]) -> dict:
    """mean(b) − mean(a) with Welch's 95% t interval (independent samples, unequal variances)."""
    test = ttest_ind(b, a, equal_var=False)
    ci = test.confidence_interval(0.95)
    return {"mean": sum(b) / len(b) - sum(a) / len(a), "ci95": [float(ci.low), float(ci.high)],
            "df": float(test.df), "method": "Welch t interval (independent seeds)"}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="summary JSON to write")
    p.add_argument("inputs", nargs="+", metavar="NAME=RESULTS.json", help="one or two `myopia gap` results.json")
    p.add_argument("--reference", choices=sorted(REFERENCES), help="add a published reference row")
    args = p.parse_args(argv)
    named = [s.partition("=") for s in args.inputs]
    if len(named) > 2 or any(not n or not f for n, _, f in named):
        p.error("give one or two inputs as NAME=path/to/results.json")
    for _, _, f in named:
        if not Path(f).is_file():
            p.error(f"{f} does not exist; run the `myopia gap` command that makes it first")
    result = {"measure": "gap-summary", "outputs": {n: summarize(f) for n, _, f in named}}
    if len(named) == 2:
        (a, _, _), (b, _, _) = named
        A, B = result["outputs"][a]["variants"], result["outputs"][b]["variants"]
        result["difference"] = {
            "of": f"{b} - {a}",
            "variants": {d: {"gap": welch(A[d]["gap_per_seed"], B[d]["gap_per_seed"]),
                             "relative_gap": welch(A[d]["relative_gap_per_seed"], B[d]["relative_gap_per_seed"])}
                         for d in A if d in B},
        }
    if args.reference:
        ref = dict(REFERENCES[args.reference])
        ref["gap"] = ref["myopic"]["mean"] - ref["vanilla"]["mean"]
        ref["relative_gap"] = ref["gap"] / ref["vanilla"]["mean"]  # of the means: per-seed values are not published
        result["reference"] = ref
    result["provenance"] = provenance()
    atomic_write_json(args.out, result)
    for name, o in result["outputs"].items():
        for d, v in o["variants"].items():
            g, r = v["gap"], v["relative_gap"]
            print(f"{name:>8} {v['policy']:>14}  vanilla {o['vanilla_loss']['mean']:.4f}  myopic "
                  f"{v['myopic_loss']['mean']:.4f}  gap {g['mean']:+.4f} [{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}]  "
                  f"gap/vanilla {r['mean']:+.2%} [{r['ci95'][0]:+.2%}, {r['ci95'][1]:+.2%}]")
    for d, v in result.get("difference", {}).get("variants", {}).items():
        g, r = v["gap"], v["relative_gap"]
        print(f"{result['difference']['of']} {d}: gap {g['mean']:+.4f} [{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}]  "
              f"gap/vanilla {r['mean']:+.2%} [{r['ci95'][0]:+.2%}, {r['ci95'][1]:+.2%}]  (Welch)")
    return result


if __name__ == "__main__":
    main()
