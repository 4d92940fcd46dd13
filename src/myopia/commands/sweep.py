"""`myopia sweep`: model sizes x {vanilla, strict myopic, the paper's myopic} x seeds; the gap
per size and the compute multiplier k with L_myopic(k C) = L_vanilla(C), read off the
measured curves (interpolated or a bound)."""

from __future__ import annotations

import argparse

from myopia.commands.common import add_run_args, add_text_args, format_table, print_warnings, text_overrides
from myopia.measures.multiplier import format_multiplier
from myopia.measures.sweep import (
    COMPUTE_RULE, DEFAULT_SIZES, DEFAULT_TOKEN_EXPONENT, DEFAULT_TOKENS, LARGER_SIZES, SWEEP_DETACH, compute_sweep,
)
from myopia.measures.model_series import SERIES_DETACH, model_series
from myopia.measures.shards import Share
from myopia.policy import GradientPolicy
from myopia.presets import FINETUNE_TRAIN, SWEEP_TRAIN
from myopia.train import TrainConfig
from myopia.report.figures import draw
from myopia.results import format_ci


def add_cli(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="sizes x {vanilla, myopic kv, myopic hidden} x seeds: the myopia gap as a compute multiplier "
        "(or along pretrained models)",
        description="Train the built-in GPT at several sizes, vanilla and myopic (strict kv and the paper's hidden "
        "variant by default), for several seeds; report the gap per size and the compute multiplier k with "
        "L_myopic(k*C) = L_vanilla(C) at every measured C, read off the measured curves: interpolated where the "
        "vanilla loss lies inside the measured myopic range, else a bound (never extrapolated), with a 95% interval "
        f"over seeds and fit forms. Compute: {COMPUTE_RULE}. "
        "With --models DIR1,DIR2,...: fine-tune each local HF checkpoint vanilla "
        "and myopic (kv and hidden) on --data with one budget and report the gap per model against its size (the "
        "paper's Pythia protocol). Rerunning the same command resumes: finished cells are reused untouched.",
    )
    p.add_argument("--out", default=None, help="output directory (default: runs/sweep; with --models: runs/series)")
    p.add_argument("--sizes", default=None,
                   help=f"comma-separated L<layers>-d<width> (default: {','.join(DEFAULT_SIZES)}; "
                   f"larger: {','.join(LARGER_SIZES)})")
    p.add_argument("--seeds", type=int, default=3, help="seeds per size (or model) and mode (default: 3)")
    p.add_argument("--tokens", type=int, default=None,
                   help=f"training tokens of a 100k-parameter model; N parameters get tokens*(N/1e5)^exponent "
                   f"(default: {DEFAULT_TOKENS})")
    p.add_argument("--token-exponent", type=float, default=None,
                   help=f"exponent of the token budget rule (default: {DEFAULT_TOKEN_EXPONENT})")
    p.add_argument("--task", default="text", help="task (default: text, the built-in corpus)")
    p.add_argument("--seq-len", dest="task_seq_len", type=int, default=None, help="context length (default: 64)")
    add_text_args(p)
    p.add_argument("--detach", default=None,
                   help=f"myopic variant(s), comma separated: kv (strict, exact G(0)), hidden (the paper's) "
                   f"(default: {','.join(SWEEP_DETACH)})")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"sequences per step (default: {SWEEP_TRAIN['batch_size']}; with --models: "
                   f"{FINETUNE_TRAIN['batch_size']})")
    p.add_argument("--lr", type=float, default=None,
                   help=f"peak learning rate (default: {SWEEP_TRAIN['lr']}; with --models: {FINETUNE_TRAIN['lr']})")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    m = p.add_argument_group("a series of pretrained models (instead of built-in sizes)")
    m.add_argument("--models", default=None, metavar="DIR1,DIR2,...",
                   help="local HF model directories (e.g. Pythia checkpoints), each fine-tuned from its weights on --data")
    m.add_argument("--steps", type=int, default=None,
                   help=f"fine-tuning steps per run, the same for every model (default: {FINETUNE_TRAIN['steps']})")
    g = p.add_argument_group("spreading a sweep over jobs or machines (one --out on a shared filesystem)")
    g.add_argument("--shard", metavar="I/N", default=None,
                   help="train only the I-th of N shares of the cells (e.g. a SLURM array task: "
                   "--shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT); no fit")
    g.add_argument("--collect", action="store_true",
                   help="train nothing: fit and report once every cell has finished (the unfinished are named)")
    add_run_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if args.models:
        return run_series(args)
    if args.steps is not None:
        raise ValueError("--steps applies to --models; a sweep of built-in sizes sets each size's budget with --tokens")
    out = args.out or "runs/sweep"
    task = {"name": args.task, **text_overrides(args)}
    if args.task_seq_len is not None:
        task["seq_len"] = args.task_seq_len
    sizes = [s.strip() for s in (args.sizes or ",".join(DEFAULT_SIZES)).split(",") if s.strip()]
    train = {"batch_size": SWEEP_TRAIN["batch_size"] if args.batch_size is None else args.batch_size,
             "lr": SWEEP_TRAIN["lr"] if args.lr is None else args.lr, "device": args.device}
    r = compute_sweep(
        task, sizes=sizes, seeds=args.seeds, tokens=DEFAULT_TOKENS if args.tokens is None else args.tokens,
        token_exponent=DEFAULT_TOKEN_EXPONENT if args.token_exponent is None else args.token_exponent,
        train=train, detach=args.detach or list(SWEEP_DETACH), out_dir=out, workers=args.workers,
        progress=not args.no_progress, shard=args.shard, collect=args.collect,
    )
    return report(r, out, format_sweep_table, "plots: {out}/loss_vs_compute.png, gap_vs_size.png, multiplier.png")


def run_series(args: argparse.Namespace) -> int:
    """``--models``: the gap along a series of pretrained checkpoints."""
    for flag, value in (("--sizes", args.sizes), ("--tokens", args.tokens), ("--token-exponent", args.token_exponent)):
        if value is not None:
            raise ValueError(f"{flag} applies to a sweep of built-in sizes, not to --models (their budget is --steps)")
    if args.task != "text":
        raise ValueError("--models fine-tunes language models on text: give --data FILE and no --task")
    if not args.task_data:
        raise ValueError("--models needs the text to fine-tune on: pass --data FILE (.txt, .jsonl, ...)")
    out = args.out or "runs/series"
    train = dict(FINETUNE_TRAIN, device=args.device)
    for key, value in (("batch_size", args.batch_size), ("lr", args.lr), ("steps", args.steps)):
        if value is not None:
            train[key] = value
    r = model_series(
        [m.strip() for m in args.models.split(",") if m.strip()], args.task_data,
        seq_len=64 if args.task_seq_len is None else args.task_seq_len, seeds=args.seeds,
        detach=args.detach or list(SERIES_DETACH), train=TrainConfig(**train), out_dir=out, workers=args.workers,
        progress=not args.no_progress, shard=args.shard, collect=args.collect,
    )
    return report(r, out, format_series_table, "plot: {out}/gap_vs_params.png")


def report(r, out: str, table, figures: str) -> int:
    """What a sweep or series prints: a shard's progress, or figures, warnings and the table."""
    if isinstance(r, Share):
        print(format_share(r, out))
        return 0
    draw(r, out)
    print_warnings(r)
    print()
    print(table(r))
    print(f"\nresults: {out}/results.json   " + figures.format(out=out))
    return 0


def format_series_table(r) -> str:
    """model | family | params | trivial | vanilla | gap per myopic variant [95% CI], smallest model first."""
    policies = [GradientPolicy(horizon=0, detach=d).name for d in r.detach]
    rows = [("model", "family", "params", "trivial", "vanilla", *(f"{p} gap [95% CI]" for p in policies))]
    for m in r.models:
        rows.append((m["name"], m["family"], f"{m['params']:,}", f"{m['trivial_loss']:.4f}",
                     f"{m['vanilla']['mean']:.4f}",
                     *(f"{v['gap']['mean']:+.4f} {format_ci(v['gap'])}" for v in m["variants"].values())))
    return format_table(rows) + (f"\n(held-out loss after {r.train['steps']} fine-tuning steps, nats/token, mean over "
                                 f"{len(r.seeds)} seed(s); myopic = strict (kv), myopic-hidden = the paper's variant)")


def format_share(r: Share, out: str) -> str:
    i, n = r.shard
    left = r.total - len(r.finished)
    head = f"shard {i}/{n}: trained {len(r.cells)} cell(s): {', '.join(r.cells) or 'none'}"
    if left:
        return (f"{head}\n{len(r.finished)} of {r.total} cells of {out} have finished; once the other shards "
                f"are done: the same command with --collect instead of --shard")
    return f"{head}\nall {r.total} cells of {out} have finished: run the same command with --collect instead of --shard"


def format_sweep_table(r) -> str:
    """Per size: params, compute, vanilla loss; per variant the myopic loss, the gap [95% CI]
    and k (interpolated [95% CI] or a bound); then the fit forms and the trend of k."""
    variants = list(r.multiplier)
    head = ["size", "params", "compute", "vanilla"]
    for d in variants:
        head += [f"{d}: myopic", f"{d}: gap [95% CI]", f"{d}: k"]
    rows = [tuple(head)]
    ks = {d: {k["size"]: k for k in r.multiplier[d]} for d in variants}
    for s in r.sizes:
        row = [s["size"], f"{s['params']:,}", f"{s['compute']:.2e}", f"{s['vanilla']['mean']:.4f}"]
        for d in variants:
            v = s[d]
            row += [f"{v['myopic']['mean']:.4f}", f"{v['gap']['mean']:+.4f} {format_ci(v['gap'])}",
                    format_multiplier(ks[d][s["size"]])]
        rows.append(tuple(row))
    lines = [format_table(rows),
             f"(test loss, nats/token, mean over seeds; trivial unigram loss {r.trivial_loss:.4f}; compute "
             f"{r.compute_rule.split(':')[0]})",
             "k: L_myopic(k*C) = L_vanilla(C), interpolated on the measured myopic curve [95% CI over seeds and fit "
             "forms], or a bound (> C_max/C: never reached within the measured compute; < C_min/C: already reached)"]
    lines += [f"{d} = {r.labels[d]}: {r.trend[d]}" for d in variants]
    fit = r.fit
    alts = "; ".join(f"{f} {t['loo_error']:.4f}" for f, t in fit["alternatives"].items() if t["loo_error"] is not None)
    lines.append(f"fit form by leave-one-size-out error (summed over the curves): {fit['form']} ({alts})")
    return "\n".join(lines)
