"""`myopia probe`: future-token and task-feature probes at every layer, each paired with its
causal test (erase what the probe reads, measure the loss where it is needed).

The causal test is part of this command rather than a separate ``myopia patch``: the
eraser is built from the same states and targets as the probe, and a verdict ("decodable
but not used", ...) needs both numbers on the same data. ``--no-causal`` skips it. The
edit mechanism itself (:mod:`myopia.probes`) is reusable on its own.
"""

from __future__ import annotations

import argparse

from myopia.commands.common import add_run_args, format_table
from myopia.measures.probe import DISAGREE, future_token_probes
from myopia.presets import PLANNING_STEER_ALPHA, PROBE
from myopia.report.figures import draw
from myopia.results import format_ci

SETTING_HELP = {
    "k_max": "probe tokens t+1..t+K", "classes": "most frequent tokens as probe classes (the rest: 'other')",
    "train_seqs": "sequences the probes are fitted on (the task's val split)",
    "val_seqs": "sequences that choose each probe's penalty (test split)",
    "test_seqs": "sequences the probes and causal tests are scored on (test split, disjoint from val)",
    "baseline_seqs": "training sequences the unigram/skip-bigram baselines count",
    "batch_size": "sequences per forward pass",
}


def add_cli(sub) -> None:
    p = sub.add_parser(
        "probe",
        help="future-token / task-feature probes at every layer, each with a causal test",
        description="Fit linear probes on the residual stream at every layer: token t+k (k = 1..K) against unigram and "
        "skip-bigram baselines, and the task's known feature (R²); erase each probed target from the state and "
        "measure the loss where it is used. Writes results.json, probe.png and probes/*.safetensors (+ .json).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--gap-dir", help="output directory of `myopia gap` (or `myopia demo`'s OUT/TASK): every run")
    src.add_argument("--checkpoint", help="one run of the built-in GPT (e.g. OUT/runs/vanilla-seed0)")
    src.add_argument("--model", help="a local Hugging Face model directory (with --data)")
    p.add_argument("--data", help="text file (.txt/.jsonl/...) for --model, or to replace a text run's corpus")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per context (default: 64, or the run's)")
    p.add_argument("--tokenizer", default=None, help="tokenizer of --data (default: the model's own)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom code from the model directory")
    for name, default in PROBE.items():
        p.add_argument("--" + name.replace("_", "-"), type=int, default=default,
                       help=f"{SETTING_HELP[name]} (default: {default})")
    p.add_argument("--no-causal", action="store_true", help="probes only, no erasure test")
    p.add_argument("--planning", action="store_true",
                   help="planning tasks: probe the planned rhyme class at the line break and steer it (the share of "
                   "greedy lines that end in the steered class)")
    p.add_argument("--steer-alpha", type=float, default=PLANNING_STEER_ALPHA,
                   help=f"with --planning: add alpha x (mu_r' - mu_r) at the line break (default: {PLANNING_STEER_ALPHA})")
    p.add_argument("--out", default="runs/probe", help="output directory (default: runs/probe)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue a stopped measurement (models already probed are kept)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    add_run_args(p, workers=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.model is not None and args.data is None:
        raise ValueError("an HF model needs text to probe on: pass --data FILE")
    r = future_token_probes(
        gap_dir=args.gap_dir, checkpoint=args.checkpoint, model=args.model, data=args.data, seq_len=args.seq_len,
        tokenizer=args.tokenizer, trust_remote_code=args.trust_remote_code,
        **{name: getattr(args, name) for name in PROBE}, causal=not args.no_causal, planning=args.planning,
        steer_alpha=args.steer_alpha, out_dir=args.out, resume=args.resume, overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    draw(r, args.out)
    print(format_probe_table(r))
    if r.planning:
        print(format_planning_table(r))
    print(f"results: {args.out}/results.json   plot: {args.out}/probe.png{'   planning.png' if r.planning else ''}   "
          f"probes: {args.out}/probes/")
    return 0


def format_probe_table(r) -> str:
    """One row per model, target and layer: probe score, baseline, causal effect, verdict."""
    rows = [("model", "target", "layer", "probe", "baseline", "erasure Δloss [95% CI]", "verdict")]
    for name, m in r.models.items():
        for k, by_layer in m.get("future_token", {}).items():
            for layer, cell in by_layer.items():
                rows.append((name, f"token t+{k}", layer, f"CE {cell['ce']:.3f} top1 {cell['top1']:.1%}",
                             f"bigram CE {m['baseline']['bigram_ce'][k]:.3f}", _effect(m, k, layer), _verdict(m, k, layer)))
        for layer, r2 in m.get("feature_r2", {}).items():
            rows.append((name, "feature", layer, f"R² {r2:.3f}", "", _effect(m, "feature", layer),
                         _verdict(m, "feature", layer)))
    seeds = {m.get("n_seeds", 1) for m in r.models.values()}
    over = "seeds" if max(seeds) > 1 else "held-out sequences"
    return format_table(rows) + (f"\n(means; CIs over {over}; layer 0 = embeddings, l = after block l; a verdict marked "
                                 f"* is a disagreement between probe and causal test)")


def _effect(m: dict, target: str, layer: str) -> str:
    c = m.get("causal", {}).get(target, {}).get(layer)
    return "" if c is None else f"{c['effect']:+.4f} {format_ci(c)}"


def _verdict(m: dict, target: str, layer: str) -> str:
    v = m.get("verdicts", {}).get(target, {}).get(layer, "")
    return v + (" *" if v in DISAGREE else "")


def format_planning_table(r) -> str:
    """One row per model and layer: the planned class's probe top-1 and the steering share."""
    rows = [("model", "layer", "class probe top-1 [95% CI]", "ends in steered class [95% CI]", "unsteered",
             "still own class", "cue names steered class")]
    for name, m in r.planning.items():
        for layer, probe in m["probe"].items():
            s = m["steering"][layer]
            ci = s.get("ci95") or s["wilson95"]
            rows.append((name, layer, f"{probe['top1']:.1%} {format_ci(probe, '.1%')}",
                         f"{s['share']:.1%} [{ci[0]:.1%}, {ci[1]:.1%}]", f"{s['unsteered']:.1%}", f"{s['kept']:.1%}",
                         "" if s["cue_share"] is None else f"{s['cue_share']:.1%}"))
    first = next(iter(r.planning.values()))
    seeds = max(m["n_seeds"] for m in r.planning.values())
    over = ("probe CI over seeds; steering CI: two-level bootstrap over seeds and lines" if seeds > 1 else
            "probe CI over held-out sequences; steering CI: Wilson over lines")
    return format_table(rows) + (f"\n(planned rhyme class at the line break; chance {first['chance']:.0%}; steering adds "
                                 f"{first['alpha']:g} x (mu_r' - mu_r) there and the model writes line 2 greedily; {over})")
