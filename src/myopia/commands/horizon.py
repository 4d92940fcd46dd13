"""`myopia horizon`: held-out loss vs gradient horizon, over seeds."""

from __future__ import annotations

import argparse

from myopia.commands.common import (
    add_output_args, add_training_args, format_table, output_settings, print_warnings, training_settings,
)
from myopia.measures.horizon import DEFAULT_HORIZONS, horizon_curve
from myopia.presets import SYNTHETIC_TRAIN
from myopia.report.figures import draw
from myopia.results import format_ci, format_share


def add_cli(sub) -> None:
    p = sub.add_parser(
        "horizon",
        help="train at several gradient horizons, report held-out loss vs horizon",
        description="Train the same model (same seeds and data order) with the gradient limited to a horizon and "
        "plot held-out loss vs horizon. h is per attention hop: query j keeps the gradient into key/value i iff "
        "j - i <= h, in every layer, so a loss can reach up to n_layer*h positions back. block=C groups positions "
        "into blocks of C and is exact at any depth. Writes results.json and horizon.png.",
    )
    p.add_argument("config", nargs="?", help="optional JSON config file with task/model/train sections")
    p.add_argument("--horizons", default=",".join(DEFAULT_HORIZONS),
                   help=f"comma-separated: integers h >= 0 (0 = myopic), inf (vanilla), block=C (default: {','.join(DEFAULT_HORIZONS)})")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: 3)")
    p.add_argument("--detach", default="kv", help="what an off-horizon key/value is: kv (strict, default) or hidden")
    add_output_args(p, "runs/horizon")
    add_training_args(p, SYNTHETIC_TRAIN)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task, model, train, file = training_settings(args, defaults={"train": SYNTHETIC_TRAIN})
    seeds = args.seeds if args.seeds is not None else file.get("seeds", 3)
    if isinstance(seeds, int) and seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    result = horizon_curve(
        task, horizons=args.horizons, model=model, train=train, seeds=seeds, detach=args.detach, **output_settings(args),
    )
    draw(result, args.out)
    print_warnings(result)
    print(format_horizon_table(result))
    print(f"results: {args.out}/results.json   plot: {args.out}/horizon.png")
    return 0


def format_horizon_table(result) -> str:
    rows = [("horizon", "reach of a loss at j", "loss mean [95% CI]", "/ trivial [95% CI]", "/ trivial per seed")]
    for r in result.horizons:
        s = r["loss"]
        per_seed = r.get("relative_to_trivial_per_seed")
        rows.append((r["horizon"], r["reach"], f"{s['mean']:.4f} {format_ci(s, '.4f')}", format_share(r["relative_to_trivial"]),
                     " ".join(f"{v:.0%}" for v in per_seed) if per_seed else "n/a"))
    name = result.task.get("name", "task")
    return (f"{name}: held-out loss vs gradient horizon (trivial predictor {result.trivial_loss:.4f}; "
            f"h is per attention hop; 95% CIs: percentile bootstrap over {len(result.seeds)} seeds)\n" + format_table(rows))
