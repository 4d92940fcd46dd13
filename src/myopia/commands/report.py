"""`myopia report RUN_DIR`: an HTML page with the plots and numbers of a measurement."""

from __future__ import annotations

import argparse


def add_cli(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write RUN_DIR/report.html from the results already in a measurement directory",
        description="Collect every results.json below RUN_DIR, redraw its plots (and the gradient-tracking "
        "plots of runs trained with --track-gradients-every) and write RUN_DIR/report.html. Nothing is retrained.",
    )
    p.add_argument("run_dir", help="the --out directory of a myopia command (demo, gap, horizon, sweep, ...)")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from myopia.report.html import build_report

    print(f"report: {build_report(args.run_dir)}")
    return 0
