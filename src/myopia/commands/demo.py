"""`myopia demo`: the embedded default experiment, minutes on a laptop CPU.

Trains vanilla and myopic built-in GPTs on the ``precache`` task (pre-caching is
necessary: vanilla learns, myopic cannot), on its ``breadcrumbs`` control (the feature
helps the present too) and on the built-in text corpus (stdlib docstrings, byte tokens),
for 3 seeds each, and prints the table of gaps. Myopic training
is run in both variants: ``hidden`` (the paper's: past attention inputs detached, W_K/W_V
still learn from later losses) and ``kv`` (strict: past keys/values are constants).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from myopia.commands.common import add_run_args
from myopia.commands.gap import format_gap_table
from myopia.measures.gap import DEFAULT_MODEL, myopia_gap
from myopia.train import TrainConfig

DEMO_TRAIN = dict(steps=1500, batch_size=32, lr=6e-3, warmup_steps=50, eval_every=250, test_batches=16)
DEMO_TASKS = ("precache", "breadcrumbs")
DEMO_DETACH = ("hidden", "kv")
# The built-in text corpus (stdlib docstrings, bytes, 64-token contexts) at a size that keeps
# the whole demo within a few minutes on 2 cores: ~140k parameters, 300 steps (~0.6M tokens).
DEMO_TEXT_TASK = {"name": "text", "seq_len": 64}
DEMO_TEXT_TRAIN = dict(steps=300, batch_size=32, lr=3e-3, warmup_steps=30, eval_every=100, test_batches=16)


def add_cli(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the default experiment: myopia gaps on synthetic tasks (a few minutes on a CPU)",
        description="Train vanilla and myopic models on the precache task and its breadcrumbs control "
        "and print the myopia gaps. Reruns reuse finished runs in --out.",
    )
    p.add_argument("--out", default="myopia-demo", help="output directory (default: myopia-demo)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per task (default: 3)")
    p.add_argument("--steps", type=int, default=DEMO_TRAIN["steps"], help=f"training steps per model (default: {DEMO_TRAIN['steps']})")
    p.add_argument("--no-text", action="store_true", help="skip the built-in text corpus row")
    p.add_argument("--overwrite", action="store_true", help="delete --out first instead of reusing finished runs")
    add_run_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    out = Path(args.out)
    train = TrainConfig(**{**DEMO_TRAIN, "steps": args.steps})
    t0 = time.perf_counter()
    results = []
    for task in DEMO_TASKS:
        results.append(myopia_gap(
            task, model=DEFAULT_MODEL, train=train, seeds=args.seeds, detach=list(DEMO_DETACH),
            out_dir=out / task, resume=not args.overwrite, overwrite=args.overwrite,
            workers=args.workers, progress=not args.no_progress,
        ))
    if not args.no_text:
        results.append(myopia_gap(
            DEMO_TEXT_TASK, model=DEFAULT_MODEL, train=TrainConfig(**DEMO_TEXT_TRAIN), seeds=args.seeds,
            detach=list(DEMO_DETACH), out_dir=out / "text", resume=not args.overwrite, overwrite=args.overwrite,
            workers=args.workers, progress=not args.no_progress,
        ))
    from myopia.report.html import build_report

    report = build_report(out)
    print()
    print(format_gap_table(results))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; results: " + ", ".join(
        f"{out / t}/results.json" for t in DEMO_TASKS + (() if args.no_text else ("text",))))
    print(f"report (every plot and number): {report}")
    return 0
