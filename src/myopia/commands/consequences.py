"""`myopia consequences`: output-side myopia — are a model's predictions shaped by their consequences?"""

from __future__ import annotations

import argparse

from myopia.commands.common import MODEL_FIELDS_SKIP, add_output_args, format_table, output_settings
from myopia.config import add_dataclass_args, dataclass_overrides
from myopia.data.branching import BranchingSource
from myopia.measures.consequences import ControlConfig, DriftConfig, output_myopia
from myopia.model import GPTConfig
from myopia.presets import CONSEQUENCES_MODEL, CONSEQUENCES_SEEDS, CONSEQUENCES_TASK, CONSEQUENCES_TRAIN
from myopia.report.figures import draw
from myopia.results import format_ci
from myopia.train import TrainConfig


def add_cli(sub) -> None:
    p = sub.add_parser(
        "consequences",
        help="output-side myopia: self-fulfilling bias and free-running drift of teacher-forced models, "
        "against a policy-gradient positive control",
        description="On a source whose next-token law q is known exactly (the branching Markov source: at a branch "
        "an easy and a hard entry have the same q, only their continuations differ), train vanilla and strictly "
        "myopic (detach=kv) models by teacher forcing and a positive control (the vanilla model fine-tuned by policy "
        "gradient on its own sampled tokens). Reports the self-fulfilling bias (log-odds toward easy entries "
        "relative to q, 95%% CI over seeds), KL(q||p) split by entry type, and the drift of free-running "
        "generations (n-gram divergence by generated length, loop rate). Writes results.json and consequences.png.",
    )
    p.add_argument("--seeds", type=int, default=CONSEQUENCES_SEEDS, help=f"number of seeds (default: {CONSEQUENCES_SEEDS})")
    p.add_argument("--detach", default="kv", help="myopic variant(s), comma separated: kv (strict, default), hidden")
    add_output_args(p, "runs/consequences")
    add_dataclass_args(p, BranchingSource, skip=("name", "seed"), title="the branching source", dest_prefix="task_")
    add_dataclass_args(p, GPTConfig, skip=MODEL_FIELDS_SKIP, title="built-in GPT", dest_prefix="model_",
                       defaults=CONSEQUENCES_MODEL)
    add_dataclass_args(p, TrainConfig, title="teacher-forced training", dest_prefix="train_",
                       defaults=CONSEQUENCES_TRAIN)
    add_dataclass_args(p, ControlConfig, title="positive control (policy-gradient fine-tune)", dest_prefix="control_",
                       flag_prefix="control-")
    add_dataclass_args(p, DriftConfig, title="free-running generation", dest_prefix="drift_")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    task = {**CONSEQUENCES_TASK, **dataclass_overrides(args, BranchingSource, "task_")}
    model = dataclass_overrides(args, GPTConfig, "model_")
    train = TrainConfig(**{**CONSEQUENCES_TRAIN, **dataclass_overrides(args, TrainConfig, "train_")})
    control = ControlConfig(**dataclass_overrides(args, ControlConfig, "control_"))
    drift = DriftConfig(**dataclass_overrides(args, DriftConfig, "drift_"))
    result = output_myopia(
        task, model=model, train=train, control=control, drift=drift, seeds=args.seeds, detach=args.detach, **output_settings(args),
    )
    draw(result, args.out)
    print(format_consequences_table(result))
    print(f"results: {args.out}/results.json   plot: {args.out}/consequences.png   ({result.wall_time_s:.0f} s)")
    return 0


def format_consequences_table(result) -> str:
    rows = [("model", "bias [95% CI] (nats)", "easy mass", "KL(q||p)", "loop rate sampled / greedy",
             f"{result.drift['ngram']}-gram TV first / last window")]
    src = result.source
    rows.append(("source (q)", f"{src['bias']:+.4f} (exact)", "0.500", "0", f"{src['loop_rate']:.3f} / "
                 f"{src['greedy']['loop_rate']:.3f}", f"{src['ngram_divergence'][0]:.3f} / {src['ngram_divergence'][-1]:.3f}"))
    for name, m in result.models.items():
        b = m["bias"]
        rows.append((name, f"{b['mean']:+.4f} {format_ci(b)}", f"{m['easy_mass']['mean']:.3f}",
                     f"{m['excess_loss']['mean']:.4f}", f"{m['loop_rate']:.3f} / {m['greedy']['loop_rate']:.3f}",
                     f"{m['ngram_divergence'][0]:.3f} / {m['ngram_divergence'][-1]:.3f}"))
    return (f"{result.task.get('name')}: self-fulfilling bias (log-odds toward easy entries relative to q) and "
            f"free-running drift; {len(result.seeds)} seeds; myopic = strict (detach=kv)\n" + format_table(rows))
