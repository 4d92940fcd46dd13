"""Training throughput (tokens/s) of the built-in GPT through myopia's training loop, next
to a plain-PyTorch baseline of the same model.

    python benchmarks/throughput.py                 # default sizes, vanilla and myopic
    python benchmarks/throughput.py --rounds 3 --steps 10   # quick

* ``myopia``: :func:`myopia.train.train` on the built-in text corpus (byte tokens, 64-token
  contexts): batches from the memmap cache, policy-aware attention, AdamW with the
  schedule, gradient clipping, metrics rows. Step times come from a step callback, so
  the final held-out evaluation is not counted.
* ``plain``: the same shapes written as plain PyTorch (GPT-2 blocks with
  ``F.scaled_dot_product_attention(is_causal=True)``, same AdamW groups, schedule and
  clipping), fed batches that are already in memory — no data pipeline at all.

The two run interleaved in one process (A B A B ..., ``--rounds`` pairs of ``--steps``
steps each, the first step of a block not timed); reported: the median tokens/s of each and
the median over rounds of the per-round ratio myopia / plain. Target: ratio >= 0.95 for
vanilla. The myopic row divides myopic training by the same vanilla baseline. Timings on a
shared machine are noisy; trust the ratios more than the absolute numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class PlainBlock(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.attn_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class PlainGPT(nn.Module):
    def __init__(self, vocab: int, T: int, n_layer: int, n_head: int, d: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(T, d)
        self.h = nn.ModuleList(PlainBlock(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def plain_block(model, opt, sched, batches, clip: float) -> list[float]:
    times = []
    for x, y in batches:
        t = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        loss.item()
        times.append(time.perf_counter() - t)
    return times[1:]


def myopia_block(model, task, policy, cfg) -> list[float]:
    from myopia.train import train

    stamps = []
    train(model, task, policy, cfg, progress=False, callbacks=[(1, lambda *a: stamps.append(time.perf_counter()))])
    return [b - a for a, b in zip(stamps, stamps[1:])]


def bench(size: str, args) -> dict:
    from myopia.data import make_task
    from myopia.measures.sweep import size_shape
    from myopia.policy import GradientPolicy
    from myopia.runs import build_model
    from myopia.train import TrainConfig, lr_at, make_optimizer

    shape = size_shape(size)
    task = make_task("text", seq_len=args.seq_len)
    B, T = args.batch_size, args.seq_len
    cfg = TrainConfig(steps=args.steps + 1, batch_size=B, eval_every=10**9, eval_batches=1, test_batches=1,
                      checkpoint_every=10**9, warmup_steps=2)
    models = {"vanilla": build_model(shape, task, 0), "myopic": build_model(shape, task, 0)}
    plain = PlainGPT(task.vocab_size, T, shape["n_layer"], shape["n_head"], shape["n_embd"])
    opt = make_optimizer(plain, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s % cfg.steps, cfg))
    batches = [task.batch("train", i, B) for i in range(args.steps + 1)]
    policies = {"vanilla": GradientPolicy(), "myopic": GradientPolicy(horizon=0)}
    per = {"plain": [], "vanilla": [], "myopic": []}
    ratios = {"vanilla": [], "myopic": []}
    for r in range(args.rounds):
        order = ["plain", "vanilla", "myopic"] if r % 2 == 0 else ["myopic", "vanilla", "plain"]
        got = {}
        for mode in order:
            ts = plain_block(plain, opt, sched, batches, cfg.grad_clip) if mode == "plain" else \
                myopia_block(models[mode], task, policies[mode], cfg)
            got[mode] = B * T / statistics.median(ts)
            per[mode].append(got[mode])
        for mode in ratios:
            ratios[mode].append(got[mode] / got["plain"])
    params = models["vanilla"].num_params()
    return {"size": size, "params": params, **{f"{m}_tok_s": statistics.median(v) for m, v in per.items()},
            **{f"{m}_ratio": statistics.median(v) for m, v in ratios.items()},
            **{f"{m}_ratio_range": [min(v), max(v)] for m, v in ratios.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="L2-d64,L4-d128", help="comma-separated L<layers>-d<width>")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per block")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [bench(s.strip(), args) for s in args.sizes.split(",") if s.strip()]
    print(f"tokens/s, batch {args.batch_size} x {args.seq_len}, {args.threads} thread(s), {os.cpu_count()} CPUs; "
          f"median of {args.rounds} interleaved rounds x {args.steps} steps (ratio: median per-round myopia/plain)")
    print(f"{'size':<8} {'params':>9} {'plain':>9} {'myopia vanilla':>15} {'ratio':>6} {'myopia myopic':>14} {'ratio':>6}")
    ok = True
    for r in rows:
        print(f"{r['size']:<8} {r['params']:>9,} {r['plain_tok_s']:>9,.0f} {r['vanilla_tok_s']:>15,.0f} "
              f"{r['vanilla_ratio']:>6.3f} {r['myopic_tok_s']:>14,.0f} {r['myopic_ratio']:>6.3f}")
        ok &= r["vanilla_ratio"] >= 0.95 and math.isfinite(r["vanilla_ratio"])
    print("vanilla ratio >= 0.95:", "yes" if ok else "NO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
