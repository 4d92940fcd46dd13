"""`myopia gap`: myopic-trained minus vanilla-trained held-out loss, over seeds."""

from __future__ import annotations

import argparse

from myopia.commands.common import add_output_args, add_training_args, format_table, training_settings
from myopia.commands.hf_model import add_hf_model_args, apply_hf_model, hf_train_defaults
from myopia.measures.gap import myopia_gap
from myopia.presets import SYNTHETIC_TRAIN
from myopia.report.figures import draw
from myopia.results import format_ci


def add_cli(sub) -> None:
    p = sub.add_parser(
        "gap",
        help="train vanilla and myopic models, report the myopia gap",
        description="Train vanilla and myopic models from the same initialisation and data order for "
        "several seeds; write results.json (per-seed losses, gap with 95% CI, per-position gap) and gap.png.",
    )
    p.add_argument("config", nargs="?", help="optional JSON config file with task/model/train sections")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: 3)")
    p.add_argument("--detach", default=None, help="myopic variant(s), comma separated: kv (strict, default), hidden")
    add_output_args(p, "runs/gap")
    add_training_args(p, SYNTHETIC_TRAIN)
    add_hf_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task, model, train, file = training_settings(args, hf_train_defaults(args))
    task, model = apply_hf_model(args, task, model)
    seeds = args.seeds if args.seeds is not None else file.get("seeds", 3)
    if isinstance(seeds, int) and seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    detach = args.detach.split(",") if args.detach else file.get("detach", ["kv"])
    result = myopia_gap(
        task, model=model, train=train, seeds=seeds, detach=detach,
        out_dir=args.out, resume=args.resume, overwrite=args.overwrite, workers=args.workers,
        progress=not args.no_progress,
    )
    draw(result, args.out)
    print(format_gap_table([result]))
    if result.token_gaps.get("largest"):
        print("next tokens with the largest gap: " + ", ".join(
            f"{r['text']!r} {r['gap']:+.3f}" for r in result.token_gaps["largest"][:6]))
    print(f"results: {args.out}/results.json   plot: {args.out}/gap.png")
    return 0


FEATURE_LAYER = "1"  # the table's probe: the state after block 1, where a pre-cached feature must be for block 2 to read it


def format_gap_table(results: list) -> str:
    """task | vanilla | myopic | trivial | gap [95% CI], losses as mean over seeds (and / trivial);
    with a known task feature, its probe R² after block 1 per seed, for vanilla and myopic."""
    probed = any(getattr(r, "feature_r2", None) for r in results)
    head = ("task", "policy", "vanilla", "myopic", "trivial", "gap [95% CI]")
    rows = [head + (("R² vanilla", "R² myopic") if probed else ())]

    def r2(r, policy: str) -> str:
        per_seed = getattr(r, "feature_r2", {}).get(policy, {}).get("per_seed")
        return "/".join(f"{row[FEATURE_LAYER]:.2f}" for row in per_seed) if per_seed else "-"

    for r in results:
        van = sum(r.vanilla_loss) / len(r.vanilla_loss)
        for var in r.variants.values():
            myo = sum(var["myopic_loss"]) / len(var["myopic_loss"])
            g = var["gap"]
            row = (
                r.task.get("name", "?"), var["policy"],
                f"{van:.4f} ({r.relative(van):.0%})", f"{myo:.4f} ({r.relative(myo):.0%})",
                f"{r.trivial_loss:.4f}", f"{g['mean']:+.4f} {format_ci(g)}",
            )
            rows.append(row + ((r2(r, "vanilla"), r2(r, var["policy"])) if probed else ()))
    note = "(loss as mean over seeds; in brackets: share of the trivial loss"
    if probed:
        note += ";\n R²: held-out R² of a linear probe for the task's feature (precache: sin(a·x_t) at position t) " \
                "after block 1, one value per seed"
    return format_table(rows) + "\n" + note + ")"
