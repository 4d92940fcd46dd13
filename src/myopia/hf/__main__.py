"""``python -m myopia.hf make-tiny DIR``: Hugging Face model tools that need no ``myopia`` command.

Writing a tiny model is a setup step (for tests, docs, a first try), not a measurement, so
it lives with the HF package rather than in ``myopia``'s command line.
"""

from __future__ import annotations

import argparse
import sys

from myopia.hf.tiny import TINY_CONFIGS, make_tiny


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m myopia.hf", description="Hugging Face model tools for myopia.")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("make-tiny", help="write a tiny random causal LM and a byte-level tokenizer to DIR")
    t.add_argument("dir")
    t.add_argument("--family", default="gpt2", choices=sorted(TINY_CONFIGS))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--size", default=None, help="L<layers>-d<width>, e.g. L2-d64 (default: the family's tiny shape)")
    args = p.parse_args(argv)
    try:
        out = make_tiny(args.dir, args.family, args.seed, size=args.size)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote a tiny {args.family} model and tokenizer to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
