"""`myopia bonus`: the local myopia bonus L(θ0′) - L(φ*) of a trained model, against an equal-budget control."""

from __future__ import annotations

import argparse

from myopia.commands.common import add_run_args, format_table, print_warnings
from myopia.config import add_dataclass_args, dataclass_overrides
from myopia.measures.bonus import INITS, load_theta0, local_myopia_bonus
from myopia.presets import BONUS_TRAIN
from myopia.report.figures import draw
from myopia.results import format_ci
from myopia.train import TrainConfig


def add_cli(sub) -> None:
    p = sub.add_parser(
        "bonus",
        help="local myopia bonus of a trained model (HF model directory or a `myopia gap` run)",
        description="Freeze the model θ0 as the source of everything the past provides and train a copy φ for "
        "each position's own loss; train the control θ0′ (θ0 continued, vanilla, same steps, lr and data); select "
        "each by validation loss (step 0 included). Reports bonus = L(θ0′) - L(φ*), raw_bonus = L(θ0) - L(φ*) and "
        "training_drift = L(θ0) - L(θ0′), each with a 95% CI over held-out batches; writes results.json and bonus.png.",
    )
    p.add_argument("model_pos", nargs="?", metavar="MODEL", help="same as --model")
    p.add_argument("data_pos", nargs="?", metavar="DATA", help="same as --data")
    p.add_argument("--model", help="an HF model directory, or a `myopia gap` run (OUT/runs/vanilla-seed0)")
    p.add_argument("--data", help="text file (.txt/.jsonl/...) tokenized by the model's tokenizer")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer of --data: byte, bpe, or a model directory (default: the model's own)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per context (default: 64, or the run's)")
    p.add_argument("--detach", default="kv", help="variant(s), comma separated: kv (strict, default), hidden")
    p.add_argument("--init", default="theta0", choices=INITS, help="start φ at θ0 (default) or from scratch")
    p.add_argument("--seed", type=int, default=0, help="data order (and φ's init with --init scratch)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom code from the model directory")
    p.add_argument("--out", default="runs/bonus", help="output directory (default: runs/bonus)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue an existing output directory")
    g.add_argument("--overwrite", action="store_true", help="delete an existing output directory first")
    add_run_args(p, workers=False)
    add_dataclass_args(p, TrainConfig, title="training of φ and of the control θ0′", dest_prefix="train_",
                       defaults=BONUS_TRAIN)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = args.model or args.model_pos
    data = args.data or args.data_pos
    if model is None:
        raise ValueError("give the model: myopia bonus --model PATH --data FILE")
    theta0, task, info, spec = load_theta0(
        model, data=data, seq_len=args.seq_len, tokenizer=args.tokenizer, trust_remote_code=args.trust_remote_code
    )
    train = TrainConfig(**{**BONUS_TRAIN, **dataclass_overrides(args, TrainConfig, "train_")})
    r = local_myopia_bonus(
        theta0, task, train_cfg=train, detach=args.detach.split(","), init=args.init, seed=args.seed,
        out_dir=args.out, model_info=info, model_spec=spec, resume=args.resume, overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    draw(r, args.out)
    print_warnings(r)
    rows = [("variant", "L(θ0)", "L(θ0′)", "L(φ*)", "bonus L(θ0′)-L(φ*)", "raw_bonus L(θ0)-L(φ*)")]
    for var in r.variants.values():
        rows.append((var["policy"], f"{r.base_loss:.4f}", f"{r.control_loss:.4f}", f"{var['bonus_loss']:.4f}",
                     f"{var['bonus']['mean']:+.4f} {format_ci(var['bonus'])}",
                     f"{var['raw_bonus']['mean']:+.4f} {format_ci(var['raw_bonus'])}"))
    print(format_table(rows))
    d = r.training_drift
    print(f"training_drift L(θ0)-L(θ0′) = {d['mean']:+.4f} {format_ci(d)} (control selected at step "
          f"{r.control_selected_step}); 95% CIs over {r.bonus['n']} held-out batches")
    print(f"results: {args.out}/results.json   plot: {args.out}/bonus.png")
    return 0
