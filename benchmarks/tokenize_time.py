"""Time to tokenize and pack the built-in corpus (stdlib docstrings), cold and cached.

    python benchmarks/tokenize_time.py            # byte tokens
    python benchmarks/tokenize_time.py --bpe 2048 # also a BPE trained on the train split

Each measurement uses a fresh, empty cache directory ($MYOPIA_CACHE), so nothing from
earlier runs is reused:

* ``extract+tokenize+pack``: nothing cached — docstring extraction with ``ast`` over the
  standard library, the document split, tokenization, the memmap token files;
* ``tokenize+pack``: extracted docstrings cached, token cache (and a trained BPE) removed;
* ``cached``: everything cached (what every later run and every worker process pays),
  median of ``--repeat`` loads.

Targets: tokenize+pack <= 10 s, cached <= 1 s. On a shared machine, read the numbers as
upper bounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def measure(tokenizer: str, vocab_size: int | None, repeat: int) -> dict:
    from myopia.data import make_task

    spec = {"name": "text", "tokenizer": tokenizer, "vocab_size": vocab_size}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MYOPIA_CACHE"] = cache
        cold, task = timed(lambda: make_task(**spec))
        shutil.rmtree(os.path.join(cache, "text"))
        shutil.rmtree(os.path.join(cache, "tokenizers"), ignore_errors=True)
        tok, _ = timed(lambda: make_task(**spec))
        cached = statistics.median(timed(lambda: make_task(**spec))[0] for _ in range(repeat))
    s = task.summary()
    return {"tokenizer": tokenizer if vocab_size is None else f"{tokenizer}-{vocab_size}", "cold_s": cold,
            "tokenize_pack_s": tok, "cached_s": cached, "documents": sum(s["documents"].values()),
            "tokens": sum(s["tokens"].values())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bpe", type=int, default=0, help="also measure a BPE of this vocabulary size")
    ap.add_argument("--repeat", type=int, default=5, help="cached loads to take the median of")
    args = ap.parse_args(argv)
    rows = [measure("byte", None, args.repeat)]
    if args.bpe:
        rows.append(measure("bpe", args.bpe, args.repeat))
    print(f"built-in corpus, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs (shared machines: upper bounds)")
    print(f"{'tokenizer':<10} {'docs':>6} {'tokens':>10} {'extract+tokenize+pack':>22} {'tokenize+pack':>14} {'cached':>9}")
    for r in rows:
        print(f"{r['tokenizer']:<10} {r['documents']:>6} {r['tokens']:>10,} {r['cold_s']:>20.2f} s {r['tokenize_pack_s']:>12.2f} s"
              f" {r['cached_s'] * 1000:>6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
