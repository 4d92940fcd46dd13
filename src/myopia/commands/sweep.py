"""`myopia sweep`: model sizes x {vanilla, myopic} x seeds; loss-vs-compute fits and the
compute multiplier k with L_myopic(k C) = L_vanilla(C)."""

from __future__ import annotations

import argparse

from myopia.commands.common import add_run_args, add_text_args, format_table, print_warnings, text_overrides
from myopia.measures.sweep import DEFAULT_SIZES, DEFAULT_TOKEN_EXPONENT, DEFAULT_TOKENS, LARGER_SIZES, compute_sweep
from myopia.presets import SWEEP_TRAIN
from myopia.report.figures import draw
from myopia.results import format_ci


def add_cli(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="sizes x {vanilla, myopic} x seeds: the myopia gap as a compute multiplier",
        description="Train the built-in GPT at several sizes, vanilla and myopic, for several seeds; fit "
        "L = a*C^-b per mode and report the compute multiplier k with L_myopic(k*C) = L_vanilla(C) at the largest "
        "C, with a bootstrap CI over seeds. Rerunning the same command resumes: finished cells are reused untouched.",
    )
    p.add_argument("--out", default="runs/sweep", help="output directory (default: runs/sweep)")
    p.add_argument("--sizes", default=",".join(DEFAULT_SIZES),
                   help=f"comma-separated L<layers>-d<width> (default: {','.join(DEFAULT_SIZES)}; "
                   f"larger: {','.join(LARGER_SIZES)})")
    p.add_argument("--seeds", type=int, default=3, help="seeds per size and mode (default: 3)")
    p.add_argument("--tokens", type=int, default=DEFAULT_TOKENS,
                   help=f"training tokens of a 100k-parameter model; N parameters get tokens*(N/1e5)^exponent "
                   f"(default: {DEFAULT_TOKENS})")
    p.add_argument("--token-exponent", type=float, default=DEFAULT_TOKEN_EXPONENT,
                   help=f"exponent of the token budget rule (default: {DEFAULT_TOKEN_EXPONENT})")
    p.add_argument("--task", default="text", help="task (default: text, the built-in corpus)")
    p.add_argument("--seq-len", dest="task_seq_len", type=int, default=None, help="context length (default: 64)")
    add_text_args(p)
    p.add_argument("--detach", default="kv", help="myopic variant: kv (strict, default) or hidden")
    p.add_argument("--batch-size", type=int, default=SWEEP_TRAIN["batch_size"],
                   help=f"sequences per step (default: {SWEEP_TRAIN['batch_size']})")
    p.add_argument("--lr", type=float, default=SWEEP_TRAIN["lr"],
                   help=f"peak learning rate (default: {SWEEP_TRAIN['lr']})")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_run_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    task = {"name": args.task, **text_overrides(args)}
    if args.task_seq_len is not None:
        task["seq_len"] = args.task_seq_len
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    r = compute_sweep(
        task, sizes=sizes, seeds=args.seeds, tokens=args.tokens, token_exponent=args.token_exponent,
        train={"batch_size": args.batch_size, "lr": args.lr, "device": args.device}, detach=args.detach,
        out_dir=args.out, workers=args.workers, progress=not args.no_progress,
    )
    draw(r, args.out)
    print_warnings(r)
    print()
    print(format_sweep_table(r))
    print(f"\nresults: {args.out}/results.json   plots: {args.out}/loss_vs_compute.png, gap_vs_size.png, multiplier.png")
    return 0


def format_sweep_table(r) -> str:
    rows = [("size", "params", "tokens", "compute", "vanilla", "myopic", "gap [95% CI]")]
    for s in r.sizes:
        rows.append((s["size"], f"{s['params']:,}", f"{s['tokens']:,}", f"{s['compute']:.2e}",
                     f"{s['vanilla']['mean']:.4f}", f"{s['myopic']['mean']:.4f}",
                     f"{s['gap']['mean']:+.4f} {format_ci(s['gap'])}"))
    cm = r.compute_multiplier
    if cm["value"] is None:
        k = "compute multiplier: undefined (the myopic loss does not fall with compute in this range)"
    else:
        ci = "n/a" if cm["ci95"] is None else f"[{cm['ci95'][0]:.3g}, {cm['ci95'][1]:.3g}]"
        k = (f"compute multiplier k = {cm['value']:.3g} (95% CI {ci}, {cm['n_seeds']} seeds) at C = {cm['at_compute']:.2e}"
             + (f"; EXTRAPOLATED {cm['extrapolation_decades']:.1f} decades beyond the measured myopic compute"
                if cm["extrapolated"] and cm.get("extrapolation_decades") else
                "; EXTRAPOLATED beyond the measured myopic compute range" if cm["extrapolated"] else ""))
        if cm.get("note"):
            k += f"\nnote: {cm['note']}"
    return format_table(rows) + f"\n(test loss, nats/token, mean over seeds; trivial unigram loss {r.trivial_loss:.4f})\n" + k
