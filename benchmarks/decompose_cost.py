"""Cost of the offset decomposition, in units of one vanilla gradient, measured side by side.

    python benchmarks/decompose_cost.py                 # default size (about a minute on a CPU)
    python benchmarks/decompose_cost.py --quick         # smoke run (seconds)
    python benchmarks/decompose_cost.py --device cuda --seq-len 512 --batch 32

What is timed, on the built-in GPT with random tokens, every mode on the same model and batch:

* ``vanilla``  one forward + backward of the mean loss (``torch.autograd.grad``): the unit.
  Its forward and backward are also timed separately (``vanilla_fwd``, ``vanilla_bwd``).
* ``split``    :func:`myopia.gradients.gradient_split`: vanilla and myopic
  (``GradientPolicy(horizon=0)``, fused myopic attention) gradients, i.e. G(0) and the
  future part. Target: <= 2.2 units.
* ``profile``  :func:`myopia.gradients.offset_profile` with K + 2 bins and S sampled
  loss positions: one forward, S backward passes with the position-splitting hooks (and the
  coverage check on the first position). Target: <= S + 1 units.

Modes are interleaved round by round with a rotating order (A B C, B C A, C A B, ...);
reported are the median time per mode and the median over rounds of each mode's ratio to
the vanilla gradient of the same round (with 25th/75th percentiles). The timing process
runs with glibc's ``MALLOC_MMAP_THRESHOLD_`` = 32 MiB and ``MALLOC_TRIM_THRESHOLD_`` = 4 GiB
so freed tensor memory is reused rather than page-faulted back every pass. Timings on a
shared machine are noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(4 << 30)}


def _reexec_with_malloc_env() -> None:
    """glibc reads its malloc settings at start-up, so set them and restart once."""
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    env = {**os.environ, **MALLOC_ENV}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--seq-len", type=int, default=128, help="T")
    ap.add_argument("--batch", type=int, default=16, help="B")
    ap.add_argument("--max-offset", type=int, default=8, help="K: bins tau = 0..K and tau > K")
    ap.add_argument("--positions", type=int, default=8, help="S: sampled loss positions")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="tiny model, 2 rounds")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args()
    if args.quick:
        args.n_layer, args.n_embd, args.seq_len, args.batch, args.rounds, args.positions = 2, 32, 32, 4, 2, 4
    if args.positions > args.seq_len:
        ap.error(f"--positions {args.positions} is larger than the sequence (--seq-len {args.seq_len}); use at most {args.seq_len}")

    import torch
    import torch.nn.functional as F

    from myopia.gradients import gradient_split, offset_profile
    from myopia.model import GPT, GPTConfig
    from myopia.policy import GradientPolicy

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = args.device
    model = GPT(GPTConfig(block_size=args.seq_len, vocab_size=args.vocab, n_layer=args.n_layer,
                          n_head=args.n_head, n_embd=args.n_embd)).to(dev)
    x = torch.randint(0, args.vocab, (args.batch, args.seq_len), device=dev)
    y = torch.randint(0, args.vocab, (args.batch, args.seq_len), device=dev)
    params = [p for p in model.parameters()]

    def loss_fn(out, y):
        return F.cross_entropy(out.transpose(1, 2), y, reduction="none")  # (B, T)

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    def vanilla():
        t0 = time.perf_counter()
        loss = loss_fn(model(x, policy=GradientPolicy()), y).mean()
        sync()
        t1 = time.perf_counter()
        torch.autograd.grad(loss, params)
        sync()
        t2 = time.perf_counter()
        return {"vanilla": t2 - t0, "vanilla_fwd": t1 - t0, "vanilla_bwd": t2 - t1}

    def split():
        t0 = time.perf_counter()
        gradient_split(model, (x, y), loss_fn)
        sync()
        return {"split": time.perf_counter() - t0}

    def profile():
        t0 = time.perf_counter()
        offset_profile(model, (x, y), loss_fn, max_offset=args.max_offset, positions=args.positions, seed=0)
        sync()
        return {"profile": time.perf_counter() - t0}

    modes = [vanilla, split, profile]
    for fn in modes:  # warm-up
        fn()
    rounds = []
    for r in range(args.rounds):
        row = {}
        for fn in modes[r % 3:] + modes[: r % 3]:
            row.update(fn())
        rounds.append(row)

    def med(key):
        return statistics.median(row[key] for row in rounds)

    def ratio(key):
        vals = sorted(row[key] / row["vanilla"] for row in rounds)
        q = statistics.quantiles(vals, n=4, method="inclusive") if len(vals) > 1 else [vals[0]] * 3
        return {"median": statistics.median(vals), "p25": q[0], "p75": q[2]}

    S = args.positions
    out = {
        "setup": {k: getattr(args, k) for k in ("n_layer", "n_head", "n_embd", "vocab", "seq_len", "batch", "max_offset", "positions", "rounds", "threads", "device")},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if dev.startswith("cuda") else None},
        "median_s": {k: med(k) for k in ("vanilla", "vanilla_fwd", "vanilla_bwd", "split", "profile")},
        "ratio_to_vanilla": {"split": ratio("split"), "profile": ratio("profile")},
        "targets": {"split": 2.2, "profile": S + 1},
    }
    # the profile in backward-pass equivalents: (profile - one forward) / one vanilla backward
    out["profile_backward_equivalents"] = (med("profile") - med("vanilla_fwd")) / med("vanilla_bwd")

    s = out["setup"]
    print(f"decompose cost: GPT {s['n_layer']}x{s['n_embd']} (heads {s['n_head']}), B={s['batch']}, T={s['seq_len']}, "
          f"K={s['max_offset']}, S={S}, {s['rounds']} interleaved rounds, device {dev}, threads {args.threads}")
    print(f"machine: {out['machine']['processor']}, {out['machine']['cpus']} CPUs, torch {torch.__version__}"
          + (f", {out['machine']['gpu']}" if out['machine']['gpu'] else ""))
    print(f"unit: one vanilla gradient (forward + backward) = {med('vanilla') * 1e3:.1f} ms "
          f"(forward {med('vanilla_fwd') * 1e3:.1f} ms, backward {med('vanilla_bwd') * 1e3:.1f} ms)")
    print(f"{'what':<34}{'median ms':>10}{'× vanilla [p25, p75]':>26}{'target':>9}{'ok':>5}")
    for key, label in (("split", "split: G(0) and future (2 passes)"), ("profile", f"profile: K+2={args.max_offset + 2} bins, S={S}")):
        r = out["ratio_to_vanilla"][key]
        target = out["targets"][key]
        print(f"{label:<34}{med(key) * 1e3:>10.1f}{r['median']:>11.2f} [{r['p25']:.2f}, {r['p75']:.2f}]{'':>4}"
              f"{'≤ ' + format(target, 'g'):>9}{'yes' if r['median'] <= target else 'NO':>5}")
    print(f"profile = 1 forward + {out['profile_backward_equivalents']:.2f} vanilla backward passes (S = {S})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    _reexec_with_malloc_env()
    sys.exit(main())
