"""`myopia gap`: myopic-trained minus vanilla-trained held-out loss, over seeds."""

from __future__ import annotations

import argparse

from myopia.commands.common import (
    add_output_args, add_training_args, format_table, output_settings, print_warnings, training_settings,
)
from myopia.commands.hf_model import add_hf_model_args, apply_hf_model, hf_train_defaults
from myopia.measures.gap import BASELINES, myopia_gap
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
    p.add_argument("--baseline", default=None,
                   help=f"also train a reference ({', '.join(BASELINES)}): bigram (the same GPT with every off-diagonal key/value zero, "
                   "so the past is not read)")
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
    baseline = args.baseline or file.get("baseline")
    result = myopia_gap(
        task, model=model, train=train, seeds=seeds, detach=detach, baseline=baseline, **output_settings(args),
    )
    draw(result, args.out)
    print_warnings(result)
    print(format_gap_table([result]))
    for extra in (format_position_gaps(result), format_accuracy(result)):
        if extra:
            print(extra)
    if result.token_gaps.get("largest"):
        print("next tokens with the largest gap: " + ", ".join(
            f"{r['text']!r} {r['gap']:+.3f}" for r in result.token_gaps["largest"][:6]))
    print(f"results: {args.out}/results.json   plot: {args.out}/gap.png")
    return 0


def format_gap_table(results: list) -> str:
    """task | vanilla | myopic | trivial | gap [95% CI], losses as mean over seeds (and / trivial);
    with a known task feature, its probe R² after block 1 per seed, for vanilla and myopic."""
    from myopia.report.findings import feature_r2_text, gap_rows
    from myopia.results import format_share

    probed = any(getattr(r, "feature_r2", None) for r in results)
    head = ("task", "policy", "vanilla", "myopic", "trivial", "gap [95% CI]")
    rows = [head + (("R² vanilla", "R² myopic") if probed else ())]

    def r2(r, policy: str) -> str:
        return feature_r2_text({"feature_r2": getattr(r, "feature_r2", None)}, policy)

    for r in results:
        for row in gap_rows(r):
            rows.append((
                row["task"], row["policy"],
                f"{row['vanilla']:.4f} ({format_share(row['vanilla_rel'])})", f"{row['myopic']:.4f} ({format_share(row['myopic_rel'])})",
                f"{row['trivial']:.4f}", f"{row['gap']['mean']:+.4f} {format_ci(row['gap'])}",
            ) + ((r2(r, "vanilla"), r2(r, row["policy"])) if probed else ()))
        if r.bigram_loss:
            van = sum(r.vanilla_loss) / len(r.vanilla_loss)
            big = sum(r.bigram_loss) / len(r.bigram_loss)
            rows.append((r.task.get("name", "?"), "bigram", f"{van:.4f} ({format_share(r.relative(van))})",
                         f"{big:.4f} ({format_share(r.relative(big))})", f"{r.trivial_loss:.4f}",
                         f"{r.past_benefit['mean']:+.4f} {format_ci(r.past_benefit)}") + (("-", "-") if probed else ()))
    note = "(loss as mean over seeds; in brackets: share of the trivial loss"
    if any(r.bigram_loss for r in results):
        note += ";\n bigram row: the transformer-bigram baseline (reads no past) in the myopic column, bigram - vanilla"
    if probed:
        note += ";\n R²: held-out R² of a linear probe for the task's feature (precache: sin(a·x_t) at position t) " \
                "after block 1, one value per seed"
    return format_table(rows) + "\n" + note + ")"


def format_position_gaps(r) -> str:
    """Loss and gap at the task's named positions (an answer, a line break, an ending)."""
    if not r.position_gaps:
        return ""
    rows = [("positions", "run", "loss", "gap to vanilla [95% CI]")]
    for group, row in r.position_gaps.items():
        for name, stat in row.items():
            if name != "positions":
                gap = stat.get("gap")
                rows.append((f"{group} {row['positions']}", name, f"{stat['loss']['mean']:.4f}",
                             "" if gap is None else f"{gap['mean']:+.4f} {format_ci(gap)}"))
    return format_table(rows)


def format_accuracy(r) -> str:
    """Exact-match accuracy per run name: mean over seeds [two-level bootstrap 95% CI], per seed."""
    if not r.accuracy:
        return ""
    rows = [("run", "exact match [95% CI]", "per seed")]
    for name, acc in r.accuracy.items():
        rows.append((name, f"{acc['mean']:.3f} {format_ci(acc, '.3f')}",
                     ", ".join(f"{s['accuracy']:.3f}" for s in acc["seeds"])))
    return format_table(rows) + "\n(exact match of the whole answer, teacher-forced argmax = greedy decoding)"
