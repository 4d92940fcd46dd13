"""`myopia ...` — the command line. Flags for model/train/task settings are generated
from the config dataclasses (see :mod:`myopia.config`); a JSON config file may give them
too (``myopia gap CONFIG``), and flags override the file.

Each command module exposes ``add_cli(subparsers)`` which registers its parser and sets
``func``; the modules are listed in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

COMMAND_MODULES = [
    "myopia.commands.gap",
    "myopia.commands.demo",
    "myopia.commands.sweep",
    "myopia.commands.bonus",
    "myopia.commands.decompose",
    "myopia.commands.horizon",
    "myopia.commands.consequences",
    "myopia.commands.probe",
    "myopia.commands.report",
    "myopia.commands.explain",
]


NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from myopia import __version__

    parser = argparse.ArgumentParser(
        prog="myopia",
        description="Measure whether transformer activations are optimised for future tokens.",
    )
    parser.add_argument("--version", action="version", version=f"myopia {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).add_cli(sub)
    for p in sub.choices.values():
        # `--lr -1e-3` is a (bad) value, not an unknown option: argparse's own pattern misses exponents
        p._negative_number_matcher = NEGATIVE_NUMBER
    return parser


def main(argv: list[str] | None = None) -> int:
    # one progress bar per command (ours, in training steps): Hugging Face libraries' own
    # loading/saving bars are switched off before they are imported (workers inherit this)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from myopia import distributed

    rank = distributed.launched()  # under torchrun the process group is joined on first use
    distributed.set_parallel(getattr(args, "parallel", "ddp"))
    quiet = open(os.devnull, "w") if not rank.is_main else None
    saved_stdout = sys.stdout
    if quiet is not None:
        sys.stdout = quiet  # rank 0 prints the tables
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("myopia: interrupted; finished runs and checkpoints are kept (rerun with --resume)", file=sys.stderr)
        return 130
    except (CliError, ValueError, OSError, FloatingPointError, RuntimeError, TypeError) as e:
        if getattr(args, "debug", False):
            raise
        # a bad setting is refused identically on every rank: rank 0 says it once; other errors
        # (a crash on one rank) are printed by the rank that met them
        if rank.is_main or not isinstance(e, (CliError, ValueError, FileNotFoundError)):
            where = "" if rank.is_main else f" (rank {rank.rank} of {rank.world_size})"
            print(f"myopia {args.command}: error{where}: {e}", file=sys.stderr)
        return 2
    finally:
        if quiet is not None:
            sys.stdout = saved_stdout
            quiet.close()


if __name__ == "__main__":
    sys.exit(main())
