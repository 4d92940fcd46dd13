"""`myopia demo`: the embedded default experiment, minutes on a laptop CPU.

Trains vanilla and myopic built-in GPTs on the ``precache`` task (pre-caching is
necessary: vanilla learns, myopic cannot), on its ``breadcrumbs`` control (the feature
helps the present too) and on the built-in text corpus (stdlib docstrings, byte tokens),
for 3 seeds each, and prints the table of gaps. Myopic training is run in both variants:
``hidden`` (the paper's: past attention inputs detached, W_K/W_V still learn from later
losses) and ``kv`` (strict: past keys/values are constants). Every setting is a preset in
:mod:`myopia.presets`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from myopia.commands.common import add_run_args, print_warnings
from myopia.commands.gap import format_gap_table
from myopia.measures.gap import gap_plan
from myopia.measures.scaffold import run_plan, train_plans
from myopia.presets import DEFAULT_MODEL, DEMO_DETACH, DEMO_SEEDS, DEMO_TASKS, DEMO_TEXT_TASK, DEMO_TRAIN, TEXT_TRAIN
from myopia.results import replacement_dir, swap_in
from myopia.train import TrainConfig


# what a demo directory holds: one gap directory per row and the report
DEMO_ENTRIES = (*DEMO_TASKS, "text", "report.html")


def add_cli(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the default experiment: myopia gaps on synthetic tasks and the built-in corpus (minutes on a CPU)",
        description="Train vanilla and myopic models (both myopic variants) on the precache task, its breadcrumbs "
        "control and the built-in text corpus, print the myopia gaps and write report.html. Reruns reuse finished "
        "runs in --out.",
    )
    p.add_argument("--out", default="myopia-demo", help="output directory (default: myopia-demo)")
    p.add_argument("--seeds", type=int, default=DEMO_SEEDS, help=f"seeds per task (default: {DEMO_SEEDS})")
    p.add_argument("--steps", type=int, default=DEMO_TRAIN["steps"],
                   help=f"training steps per model on the synthetic tasks (default: {DEMO_TRAIN['steps']})")
    p.add_argument("--text-steps", type=int, default=TEXT_TRAIN["steps"],
                   help=f"training steps per model on the text corpus (default: {TEXT_TRAIN['steps']})")
    p.add_argument("--no-text", action="store_true", help="skip the built-in text corpus row")
    p.add_argument("--overwrite", action="store_true", help="replace --out instead of reusing its finished runs (the new demo is built beside the old one and swapped in when complete)")
    add_run_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    out = Path(args.out)
    if (out / "config.json").exists():
        measure = json.loads((out / "config.json").read_text()).get("measure", "another")
        raise ValueError(f"{out} holds a {measure} measurement, not a demo; choose another --out")
    rows = [(task, task, TrainConfig(**{**DEMO_TRAIN, "steps": args.steps})) for task in DEMO_TASKS]
    if not args.no_text:
        rows.append((DEMO_TEXT_TASK, "text", TrainConfig(**{**TEXT_TRAIN, "steps": args.text_steps})))
    work = out
    if args.overwrite and out.is_dir() and any(out.iterdir()):
        foreign = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES)
        if foreign:
            raise ValueError(f"--overwrite would delete {out}, which holds more than a demo ({', '.join(foreign)}); "
                             f"choose another --out")
        work = replacement_dir(out)  # built beside the old demo, swapped in when complete
    plans = {work / name: gap_plan(task, model=DEFAULT_MODEL, train=train, seeds=args.seeds, detach=list(DEMO_DETACH))
             for task, name, train in rows}
    t0 = time.perf_counter()
    # every row's runs in one pool: no worker idles while a row's last run finishes alone
    train_plans(plans, workers=args.workers, progress=not args.no_progress, desc="demo")
    results = []
    for path, plan in plans.items():
        result = run_plan(plan, path, resume=True, workers=args.workers, progress=False)  # every run is finished
        results.append(result)
        print_warnings(result)
    from myopia.report.html import build_report

    build_report(work)  # draws every row's figures too
    if work != out:
        swap_in(work, out)
    print()
    print(format_gap_table(results))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; results: " + ", ".join(
        f"{out / name}/results.json" for _, name, _ in rows))
    print(f"report (every plot and number): {out / 'report.html'}")
    return 0
