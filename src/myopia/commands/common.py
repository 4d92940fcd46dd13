"""Flags shared by the commands that train: task, model, training, output directory."""

from __future__ import annotations

import argparse
import sys

from myopia.config import add_dataclass_args, dataclass_overrides, load_config_file
from myopia.data import PRESETS, SYNTHETIC_TASKS, TASK_NAMES
from myopia.distributed import PARALLEL_MODES
from myopia.model import GPTConfig
from myopia.presets import DEFAULT_MODEL
from myopia.train import TrainConfig

# bigram: a baseline of its own (`myopia gap --baseline bigram`), not a setting of every run
MODEL_FIELDS_SKIP = ("block_size", "vocab_size", "n_in", "n_out", "bigram")
# the synthetic task classes, labelled by the tasks that use them (for the help text)
SYNTHETIC_TASK_FLAGS = {
    ", ".join(name for name, (c, _) in PRESETS.items() if c is cls): cls for cls in SYNTHETIC_TASKS
}


def add_output_args(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--out", default=default_out, help=f"output directory (default: {default_out})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue an existing output directory")
    g.add_argument("--overwrite", action="store_true", help="delete an existing output directory first")
    add_run_args(p)


def output_settings(args: argparse.Namespace) -> dict:
    """The keyword arguments of a measure function that :func:`add_output_args` gathers."""
    return dict(out_dir=args.out, resume=args.resume, overwrite=args.overwrite, workers=args.workers,
                progress=not args.no_progress)


def add_run_args(p: argparse.ArgumentParser, *, workers: bool = True) -> None:
    """--workers (parallel training processes), --parallel (under torchrun), --no-progress, --debug."""
    if workers:
        p.add_argument("--workers", type=int, default=0,
                       help="parallel training processes (default: one per core; under torchrun runs go one after "
                       "another, each on every process)")
    p.add_argument("--parallel", default="ddp", choices=PARALLEL_MODES,
                   help="under torchrun: ddp (the model on every process, default) or fsdp (FSDP2: parameters and "
                   "optimizer state sharded over the processes, for models that do not fit on one device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")


def add_training_args(p: argparse.ArgumentParser, train_preset: dict) -> None:
    """Task, built-in GPT and training flags; the help states the defaults the command
    uses (``train_preset`` and :data:`myopia.presets.DEFAULT_MODEL`)."""
    p.add_argument("--task", default=None, metavar="TASK",
                   help=f"task: {', '.join(TASK_NAMES)} (default: precache; --data implies text)")
    add_dataclass_args(p, SYNTHETIC_TASK_FLAGS, skip=("name", "seed"), title="synthetic tasks", dest_prefix="task_")
    add_text_args(p)
    add_dataclass_args(p, GPTConfig, skip=MODEL_FIELDS_SKIP, title="built-in GPT", dest_prefix="model_",
                       defaults=DEFAULT_MODEL)
    add_dataclass_args(p, TrainConfig, title="training", dest_prefix="train_", defaults=train_preset)


TEXT_FLAGS = ("data", "tokenizer", "vocab_size", "field", "doc_start")


def add_text_args(p: argparse.ArgumentParser) -> None:
    """Corpus and tokenizer of ``--task text`` (see myopia.data.text.TextTask; --seq-len applies too)."""
    g = p.add_argument_group("text task (--task text)")
    g.add_argument("--data", dest="task_data", default=None,
                   help="corpus: a .txt/.jsonl/.parquet file, a directory, a dataset saved with save_to_disk, "
                   "hf:NAME (hub), stdlib-source (default: built-in stdlib docstrings)")
    g.add_argument("--tokenizer", dest="task_tokenizer", default=None,
                   help="byte (default), bpe (trained on the train split, cached), or a local HF model directory")
    g.add_argument("--vocab-size", dest="task_vocab_size", type=int, default=None,
                   help="BPE vocabulary size (default: 2048)")
    g.add_argument("--field", dest="task_field", default=None, help="text field of .jsonl/.parquet/datasets (default: text)")
    g.add_argument("--doc-start", dest="task_doc_start", action="store_true", default=None,
                   help="start every context at a document's first token, one context per document "
                   "(default: contexts packed across documents)")


def text_overrides(args: argparse.Namespace) -> dict:
    return {k: getattr(args, "task_" + k) for k in TEXT_FLAGS if getattr(args, "task_" + k, None) is not None}


def training_settings(
    args: argparse.Namespace, defaults: dict | None = None, default_task: str | None = "precache"
) -> tuple[dict, dict, TrainConfig, dict]:
    """(task spec, model spec, TrainConfig, rest of the config file) from file + flags.

    ``default_task=None`` leaves the task name out when nothing names it (a measure that
    reads it from a checkpoint's config)."""
    file = load_config_file(args.config) if getattr(args, "config", None) else {}
    defaults = defaults or {}
    task = {**defaults.get("task", {}), **file.get("task", {}), **dataclass_overrides(args, SYNTHETIC_TASK_FLAGS, "task_")}
    task.update(text_overrides(args))
    if args.task is None and text_overrides(args):
        task.setdefault("name", "text")
    if args.task is not None:
        task["name"] = args.task
    if default_task is not None:
        task.setdefault("name", default_task)
    model = {**defaults.get("model", {}), **file.get("model", {}), **dataclass_overrides(args, GPTConfig, "model_")}
    train = TrainConfig(**{**defaults.get("train", {}), **file.get("train", {}), **dataclass_overrides(args, TrainConfig, "train_")})
    return task, model, train, file


def print_warnings(result) -> None:
    """A measure's warnings, on stderr, where they are seen next to its table."""
    for w in getattr(result, "warnings", []):
        print(f"warning: {w}", file=sys.stderr)


def format_table(rows: list[tuple]) -> str:
    """Left-aligned text columns; the first row is the header, underlined with dashes."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
