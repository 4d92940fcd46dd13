"""`myopia explain`: one prompt, token by token, under a vanilla and a myopic model."""

from __future__ import annotations

import argparse
import time

from myopia.commands.common import format_table
from myopia.presets import EXPLAIN_THREADS


def add_cli(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="one prompt token by token: per-token gap, top-5, future-gradient share, what each prediction reads",
        description="For every token of a prompt, side by side for a vanilla and a myopic model: the loss of the next "
        "token and their gap, the top-5 predictions, the share of the gradient the position's computation receives "
        "from later losses (exact, by offset), which earlier positions the prediction reads (gradient x input), and "
        "what probes decode about later tokens. Writes OUT/explain.html (self-contained) and OUT/explain.json.",
    )
    p.add_argument("text", nargs="?", help="the prompt (or use --file / --find)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--gap-dir", help="output directory of `myopia gap` on a text task (e.g. myopia-demo/text)")
    src.add_argument("--models", help="A,B: two runs (OUT/runs/KEY) or local Hugging Face model directories; "
                     "A is the reference (vanilla column), B the compared model (myopic column)")
    p.add_argument("--seed", type=int, default=None, help="with --gap-dir: which seed's runs (default: 0)")
    p.add_argument("--variant", choices=("kv", "hidden"), default=None,
                   help="with --gap-dir: the myopic runs to compare, kv (strict, default) or hidden (the paper's)")
    p.add_argument("--file", help="prompts, one per line (\\n and \\t inside a line stand for newline and tab)")
    p.add_argument("--find", type=int, default=0, metavar="N",
                   help="also explain the N held-out windows where the myopic model loses most")
    p.add_argument("--probes", metavar="DIR", help="future-token probes of these models (the output of `myopia probe`)")
    p.add_argument("--threads", type=int, default=EXPLAIN_THREADS,
                   help=f"torch threads (default: {EXPLAIN_THREADS}; one prompt of a small model runs fastest on one)")
    p.add_argument("--top", type=int, default=10, help="rows of the printed table of the largest gaps (default: 10)")
    p.add_argument("--out", default="myopia-explain", help="output directory (default: myopia-explain)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from myopia.explain import explain, load_gap_pair, load_model_pair, read_prompt_file
    from myopia.report.explain_page import write_explain_page

    import torch

    t0 = time.perf_counter()
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    prompts = ([args.text] if args.text is not None else []) + (read_prompt_file(args.file) if args.file else [])
    if not prompts and not args.find:
        raise ValueError('give a prompt ("TEXT"), --file PROMPTS.txt or --find N')
    if args.find < 0:
        raise ValueError(f"--find N needs N >= 1, got {args.find}")
    if args.models is not None:
        if args.seed is not None or args.variant is not None:
            raise ValueError("--seed and --variant choose runs inside --gap-dir; with --models name the two runs directly")
        names = [m.strip() for m in args.models.split(",")]
        if len(names) != 2 or not all(names):
            raise ValueError(f"--models takes two comma-separated paths A,B, got {args.models!r}")
        pair = load_model_pair(*names)
    else:
        pair = load_gap_pair(args.gap_dir, seed=0 if args.seed is None else args.seed, variant=args.variant or "kv")
    result = explain(pair, prompts, find=args.find, probes_dir=args.probes, out_dir=args.out, overwrite=args.overwrite)
    page = write_explain_page(result, args.out)
    print(format_largest_gaps(result, args.top))
    if result.search:
        s = result.search
        print(f"\n{s['note']}; mean gap over all {s['windows']} windows {s['mean_gap']:+.3f} nats/token")
    print(f"\n{pair.myopic.label} ({pair.myopic.policy}) vs {pair.vanilla.label} ({pair.vanilla.policy}); "
          f"{len(result.prompts)} prompt(s), {time.perf_counter() - t0:.1f} s")
    print(f"page: {page}   data: {page.with_name('explain.json')}")
    return 0


def _visible(s: str | None) -> str:
    return "" if s is None else s.replace("\n", "\\n").replace("\t", "\\t")


def format_largest_gaps(result, top: int) -> str:
    """The ``top`` positions with the largest gap over every prompt, as a text table."""
    rows = []
    for p, prompt in enumerate(result.prompts):
        for tk in prompt["tokens"]:
            if tk["gap"] is not None:
                ctx = "".join(_visible(t["token"]) for t in prompt["tokens"][max(0, tk["position"] - 15): tk["position"] + 1])
                rows.append((tk["gap"], p, tk, ctx))
    rows.sort(key=lambda r: -r[0])
    table = [("prompt", "pos", "context -> next", "vanilla", "myopic", "gap", "future grad", "W_K+W_V")]
    for gap, p, tk, ctx in rows[:top]:
        grad = tk["future_grad"]["vanilla"] or {}
        table.append((str(p + 1), str(tk["position"]), f"...{ctx} -> {_visible(tk['next_token'])!r}",
                      f"{tk['vanilla_loss']:.3f}", f"{tk['myopic_loss']:.3f}", f"{gap:+.3f}",
                      *("-" if grad.get(k) is None else f"{grad[k]:.1%}" for k in ("share", "share_kv"))))
    return ("tokens with the largest gap (myopic - vanilla loss of the next token, nats; future grad = share of the "
            "vanilla model's gradient at that position that comes from later losses, all parameters and W_K+W_V):\n"
            + format_table(table))
