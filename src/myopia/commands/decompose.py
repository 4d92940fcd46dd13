"""`myopia decompose`: where a trained model's gradient comes from, by offset tau = j - i."""

from __future__ import annotations

import argparse
import math

from myopia.commands.common import add_run_args, add_training_args, format_table, print_warnings, training_settings
from myopia.measures.decompose import decompose_gradients
from myopia.presets import DECOMPOSE_TRAIN
from myopia.report.figures import draw


def add_cli(sub) -> None:
    p = sub.add_parser(
        "decompose",
        help="split a trained model's gradient into its own-loss part G(0), the future part and a per-offset profile",
        description="Offset decomposition G(tau) = sum_i dL_{i+tau}/dtheta_i of a trained model's gradient on held-out "
        "data, per parameter group. Without --checkpoint a vanilla model is trained first (with gradient tracking). "
        "Writes results.json, decompose.png and, with --context-lengths, context_lengths.png.",
    )
    p.add_argument("config", nargs="?", help="optional JSON config file with task/model/train sections")
    p.add_argument("--checkpoint", default=None, help="a run directory from `myopia gap` (OUT/runs/vanilla-seed0) or a model.safetensors; default: train one")
    p.add_argument("--context-lengths", default=None, help="comma-separated context lengths N, e.g. 8,32,128: future share of W_K/W_V vs N")
    p.add_argument("--max-offset", type=int, default=8, help="K: profile bins tau = 0..K and one for tau > K (default: 8)")
    p.add_argument("--positions", type=int, default=None, help="loss positions differentiated for the profile: 0 = all, S = a seeded sample "
                   "(default: all up to 64 positions, else 32)")
    p.add_argument("--no-profile", action="store_true", help="only the exact myopic/future split (two backward passes)")
    p.add_argument("--eval-batch-size", type=int, default=64, help="held-out sequences in the decomposed batch (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="model seed and position-sample seed (default: 0)")
    p.add_argument("--out", default="runs/decompose", help="output directory (default: runs/decompose)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue an existing output directory")
    g.add_argument("--overwrite", action="store_true", help="delete an existing output directory first")
    add_run_args(p, workers=False)
    add_training_args(p, DECOMPOSE_TRAIN)
    p.set_defaults(func=run)


def parse_lengths(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--context-lengths must be comma-separated integers, e.g. 8,32,128; got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    # with --checkpoint, the task it was trained on (its config.json) fills in what no flag names
    task, model, train, _ = training_settings(
        args, defaults={"train": DECOMPOSE_TRAIN}, default_task=None if args.checkpoint else "precache"
    )
    positions = "auto" if args.positions is None else args.positions
    result = decompose_gradients(
        task, model=model, train=train, checkpoint=args.checkpoint, seed=args.seed,
        max_offset=args.max_offset, positions=positions, batch_size=args.eval_batch_size,
        context_lengths=parse_lengths(args.context_lengths), profile=not args.no_profile,
        out_dir=args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
    )
    paths = draw(result, args.out)
    print_warnings(result)
    print(format_split_table(result))
    if result.profile:
        print()
        print(format_profile_table(result))
    if result.context_lengths:
        print()
        print(format_context_table(result.context_lengths))
    print(f"\nwritten to {args.out}: " + ", ".join(["results.json", *(p.name for p in paths)]))
    return 0


def _f(v: float, fmt: str) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def format_split_table(result) -> str:
    rows = [("group", "params", "‖G‖²", "myopic share", "future share", "‖F‖²/(‖G0‖²+‖F‖²)", "cos(G0,F)")]
    for g, s in result.split.items():
        rows.append((
            g, str(s["n_params"]), _f(s["vanilla_sq_norm"], ".2e"), _f(s["myopic_share"], "+.3f"),
            _f(s["future_share"], "+.3f"), _f(s["future_norm_share"], ".3f"), _f(s["cos_myopic_future"], "+.3f"),
        ))
    head = (f"{result.task.get('name', 'task')}: gradient of the mean held-out loss, {result.batch_size} sequences of "
            f"{result.seq_len} (shares of the group's vanilla gradient G along itself; G = G0 + F)")
    return head + "\n" + format_table(rows)


def format_profile_table(result) -> str:
    groups = [g for g in ("all:W_Q", "all:W_K", "all:W_V", "all:W_K+W_V", "all:W_O", "all:MLP", "embeddings", "head", "total") if g in result.profile]
    rows = [("τ", *[g.replace("all:", "") for g in groups])]
    for b, label in enumerate(result.offsets):
        cells = []
        for g in groups:
            r = result.profile[g]
            se = r["share_se"][b]
            cells.append(_f(r["share"][b], "+.3f") + (f"±{se:.3f}" if result.sampled and se == se else ""))
        rows.append((label, *cells))
    how = (f"{len(result.positions)} of {result.seq_len} loss positions sampled, ± one standard error"
           if result.sampled else "every loss position, exact")
    check = result.profile_check
    what = "relative L2 sampling error of the whole vector" if result.sampled else "relative deviation"
    return (f"per-offset share ⟨G(τ), G⟩/‖G‖² ({how}; {what}: Σ_τ vs vanilla {check['sum_vs_vanilla']:.1e}, "
            f"G(0) vs myopic {check['g0_vs_myopic']:.1e})\n" + format_table(rows))


def format_context_table(rows: list[dict]) -> str:
    out = [("N", "W_K+W_V future share", "‖F‖/‖G0‖", "cos(G0,F)", "per layer", "(N−1)/(N+1)")]
    for r in rows:
        layers = " ".join(f"{h}:{v:+.2f}" for h, v in r["kv_future_share_per_layer"].items())
        out.append((
            str(r["N"]), _f(r["kv_future_share"], "+.3f"), _f(r["kv_future_to_myopic_norm"], ".2f"),
            _f(r["kv_cos_myopic_future"], "+.3f"), layers, f"{r['uniform_reading_prediction']:.3f}",
        ))
    return "future share of the key/value gradient vs context length (same sequences, first N positions)\n" + format_table(out)
