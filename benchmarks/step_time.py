"""Training-step time and peak memory: vanilla vs myopic (fast and reference attention).

    python benchmarks/step_time.py --json step_time.json         # full run (a few minutes)
    python benchmarks/step_time.py --quick --json /tmp/quick.json  # smoke run (seconds)
    python benchmarks/step_time.py --device cuda --dtype bfloat16 --lengths 1024 4096 --json gpu.json

What is measured: one full training step of the built-in GPT (forward, cross-entropy loss,
backward, AdamW step, zero_grad) under three modes, each with its own identically
initialised model and optimizer:

* ``vanilla``           ``GradientPolicy()``, fused causal attention;
* ``myopic_fast``       ``GradientPolicy(horizon=0)``, ``impl="fast"``;
* ``myopic_reference``  ``GradientPolicy(horizon=0)``, ``impl="reference"`` (materialised scores).

Each row names the attention path that ran (``path``): ``sdpa`` for vanilla, ``reference``,
and for ``myopic_fast`` the one :func:`myopia.attention.myopic_path` picks for the model's
(B, nh, T, hs) on that device and dtype — on CUDA ``triton`` (the dQ-only backward of
:mod:`myopia.attention_triton`) when triton is installed, else ``correction``.

Time: all modes run in ONE worker process, interleaved round by round (the order rotates
every round: A B C, B C A, C A B, ... so no mode always follows the same neighbour). Reported:
the median step time per mode and, per mode, the median over rounds of the per-round ratio
to the vanilla step of the same round (with its 25th/75th percentiles, and a 95% percentile
bootstrap interval for that median over rounds, ``time_ratio_ci95``: how well the rounds pin
the ratio down on a noisy machine).

Peak memory: each (mode, T) runs in a fresh child process. After model + optimizer creation
and one warm-up step (optimizer moments allocated, grads freed), the child resets its
peak-RSS counter (``echo 5 > /proc/self/clear_refs``), records VmRSS as the baseline, runs
two more steps and reads VmHWM from /proc/self/status: ``peak_mib = VmHWM - baseline``, the
memory a step needs on top of the model and optimizer state. Where clear_refs is not
available the baseline is VmRSS right after model + optimizer creation (the JSON says which).

glibc malloc settings (environment of the worker processes, see DESIGN.md):
* timing worker: ``MALLOC_MMAP_THRESHOLD_`` = 32 MiB (glibc's maximum) and
  ``MALLOC_TRIM_THRESHOLD_`` = 4 GiB, so freed tensor memory is reused instead of being
  returned to the OS and page-faulted back in every step;
* memory children: ``MALLOC_MMAP_THRESHOLD_=131072`` (fixed), so every large tensor gets its
  own mapping that is returned on free; RSS then follows the live tensors and VmHWM is
  their peak, independent of the allocator's history.

Each step is also timed in process CPU time (``time.process_time``, all threads): its
ratio (``cpu_time_ratio``) is less sensitive to the process being descheduled when other
work shares the cores, but counts OpenMP spin-waiting, so prefer it with ``--threads 1``.

On CUDA (``--device cuda``) every timed step ends with ``torch.cuda.synchronize()``, and
peak memory is ``torch.cuda.max_memory_allocated`` over two steps after a warm-up step minus
the memory allocated before them (model, optimizer state), in a fresh child process per mode.

Timings on a shared machine are noisy: read the ratios with their percentiles, repeat the
run, and never compare absolute step times across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("vanilla", "myopic_fast", "myopic_reference")
# glibc ignores an mmap threshold above 32 MiB (its maximum on 64-bit), so that is the value.
TIMING_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(4 << 30)}
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}

FULL = dict(n_layer=4, n_head=4, n_embd=256, vocab_size=256, tokens=2048, rounds=15, warmup=2)
QUICK = dict(n_layer=1, n_head=2, n_embd=32, vocab_size=64, tokens=256, rounds=3, warmup=1)


# ---------------------------------------------------------------------------- one step
def _setup(mode: str, T: int, spec: dict):
    """Model, optimizer, batch, step function and attention path for one mode (same seed for every mode)."""
    import torch

    from myopia.attention import myopic_path
    from myopia.model import GPT, GPTConfig
    from myopia.policy import GradientPolicy

    policy, impl = {
        "vanilla": (GradientPolicy(), "auto"),
        "myopic_fast": (GradientPolicy(horizon=0), "fast"),
        "myopic_reference": (GradientPolicy(horizon=0), "reference"),
    }[mode]
    torch.manual_seed(0)
    cfg = GPTConfig(
        block_size=T, vocab_size=spec["vocab_size"], n_layer=spec["n_layer"], n_head=spec["n_head"], n_embd=spec["n_embd"]
    )
    device, dtype = spec["device"], getattr(torch, spec["dtype"])
    model = GPT(cfg).to(device, dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    B = max(1, spec["tokens"] // T)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, cfg.vocab_size, (B, T), generator=g).to(device)
    y = torch.randint(0, cfg.vocab_size, (B, T), generator=g).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step() -> None:
        logits = model(x, policy=policy, impl=impl)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()

    if mode == "myopic_fast":  # the path myopic_fast_attention takes for this layer shape
        q = torch.empty(B, cfg.n_head, T, cfg.n_embd // cfg.n_head, device=device, dtype=dtype)
        path = myopic_path(q, q, q, None)
    else:
        path = "sdpa" if mode == "vanilla" else "reference"
    return step, B, path


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def worker_memory(mode: str, T: int, spec: dict) -> dict:
    import gc

    import torch

    torch.set_num_threads(spec["threads"])
    step, B, _ = _setup(mode, T, spec)
    if spec["device"] == "cuda":
        step()  # warm-up: optimizer moments, kernels compiled and tuned
        gc.collect()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        step()
        peak = torch.cuda.max_memory_allocated()
        return {"peak_mib": (peak - base) / 2**20, "baseline_mib": base / 2**20, "batch": B,
                "method": "torch.cuda.max_memory_allocated - memory_allocated after warm-up step"}
    base_created = _proc_status_kib("VmRSS")
    step()  # warm-up: optimizer moments, one-time allocations
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base, method = _proc_status_kib("VmRSS"), "VmHWM - VmRSS after warm-up step (clear_refs reset)"
    except OSError:
        base, method = base_created, "VmHWM - VmRSS after model+optimizer creation"
    step()
    step()
    peak = _proc_status_kib("VmHWM")
    # Tiny models can free more than a step allocates (RSS ends below the baseline): that
    # step needed nothing beyond the baseline, so it counts as 0, not as a negative peak.
    return {"peak_mib": max(0.0, (peak - base) / 1024), "baseline_mib": base / 1024, "method": method, "batch": B}


def worker_timing(T: int, spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    steps, paths = {}, {}
    for mode in MODES:
        steps[mode], B, paths[mode] = _setup(mode, T, spec)
    for _ in range(spec["warmup"]):
        for mode in MODES:
            steps[mode]()
    times: dict[str, list[float]] = {m: [] for m in MODES}
    cpu_times: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(spec["rounds"]):
        order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
        for mode in order:
            t0, c0 = time.perf_counter(), time.process_time()
            steps[mode]()
            times[mode].append(time.perf_counter() - t0)
            cpu_times[mode].append(time.process_time() - c0)
    return {"times": times, "cpu_times": cpu_times, "batch": B, "paths": paths}


# ---------------------------------------------------------------------------- orchestration
def _start_worker(args: list[str], env_extra: dict) -> tuple[list[str], subprocess.Popen]:
    env = dict(os.environ, **env_extra)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    return args, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish_worker(started: tuple[list[str], subprocess.Popen]) -> dict:
    args, proc = started
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker {' '.join(args)} failed:\n{stderr.strip()}")
    return json.loads(stdout.strip().splitlines()[-1])


def _median_ci95(xs: list[float], resamples: int = 4000, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of the median of ``xs`` (rounds resampled with
    replacement, a fixed seed so a rerun on the same data prints the same interval)."""
    rng = random.Random(seed)
    meds = [statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples)]
    return [_quantile(meds, 0.025), _quantile(meds, 0.975)]


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _machine(threads: int, device: str) -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "cpu": cpu,
        "cores_available": cores,
        "torch_threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
        "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
    }


def _git_rev() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True
        )
        return out.stdout.strip() or None
    except OSError:
        return None


def run(spec: dict, lengths: list[int]) -> dict:
    import torch

    threads = spec["threads"] or torch.get_num_threads()
    spec = dict(spec, threads=threads)
    result: dict = {"machine": _machine(threads, spec["device"])}
    spec_arg = json.dumps(spec)
    for T in lengths:
        timing = _finish_worker(_start_worker(["--_worker", "time", "--_T", str(T), "--_spec", spec_arg], TIMING_ENV))
        times = timing["times"]
        # Peak RSS is per process, so the memory children may run side by side (not during timing).
        started = {
            m: _start_worker(["--_worker", "mem", "--_mode", m, "--_T", str(T), "--_spec", spec_arg], MEMORY_ENV)
            for m in MODES
        }
        mem = {m: _finish_worker(w) for m, w in started.items()}
        van_t = times["vanilla"]
        entry: dict = {
            "vanilla": {
                "step_s": statistics.median(van_t),
                "peak_mib": mem["vanilla"]["peak_mib"],
                "path": timing["paths"]["vanilla"],
            },
            "batch": timing["batch"],
            "rounds": len(van_t),
        }
        for mode in MODES[1:]:
            ratios = [a / b for a, b in zip(times[mode], van_t)]
            cpu_ratios = [a / b for a, b in zip(timing["cpu_times"][mode], timing["cpu_times"]["vanilla"])]
            entry[mode] = {
                "time_ratio": statistics.median(ratios),
                "time_ratio_p25_p75": [_quantile(ratios, 0.25), _quantile(ratios, 0.75)],
                "time_ratio_ci95": _median_ci95(ratios),
                "cpu_time_ratio": statistics.median(cpu_ratios),
                # None only when vanilla's step peak is below one page (tiny smoke sizes)
                "mem_ratio": mem[mode]["peak_mib"] / mem["vanilla"]["peak_mib"] if mem["vanilla"]["peak_mib"] > 0 else None,
                "step_s": statistics.median(times[mode]),
                "peak_mib": mem[mode]["peak_mib"],
                "path": timing["paths"][mode],
            }
        entry["raw_step_s"] = times
        entry["raw_step_cpu_s"] = timing["cpu_times"]
        result[f"T{T}"] = entry
        result["memory_method"] = mem["vanilla"]["method"]
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    result["config"] = {
        "model": {k: spec[k] for k in ("n_layer", "n_head", "n_embd", "vocab_size")},
        "tokens_per_step": spec["tokens"],
        "warmup_rounds": spec["warmup"],
        "optimizer": "AdamW",
        "device": spec["device"],
        "dtype": spec["dtype"],
        "malloc_env": {"timing": TIMING_ENV, "memory": MEMORY_ENV},
        "git_rev": _git_rev(),
    }
    return result


def table(result: dict) -> str:
    lines = [
        f"{'T':>6} {'mode':<18} {'path':<10} {'step s':>8} {'time ratio':>11} {'p25-p75':>13} {'median 95% CI':>13} "
        f"{'cpu ratio':>9} {'peak MiB':>9} {'mem ratio':>9}"
    ]
    for key, entry in result.items():
        if not key.startswith("T"):
            continue
        v = entry["vanilla"]
        lines.append(f"{key[1:]:>6} {'vanilla':<18} {v['path']:<10} {v['step_s']:>8.3f} {'1.000':>11} {'':>13} {'':>13} "
                     f"{'1.000':>9} {v['peak_mib']:>9.1f} {'1.000':>9}")
        for mode in MODES[1:]:
            e = entry[mode]
            lo, hi = e["time_ratio_p25_p75"]
            clo, chi = e["time_ratio_ci95"]
            lines.append(
                f"{'':>6} {mode:<18} {e['path']:<10} {e['step_s']:>8.3f} {e['time_ratio']:>11.3f} {f'{lo:.3f}-{hi:.3f}':>13} "
                f"{f'{clo:.3f}-{chi:.3f}':>13} "
                f"{e['cpu_time_ratio']:>9.3f} {e['peak_mib']:>9.1f} {'n/a' if e['mem_ratio'] is None else format(e['mem_ratio'], '.3f'):>9}"
            )
    m = result["machine"]
    gpu = f"{m['gpu']}, " if m.get("gpu") else ""
    lines.append(
        f"machine: {gpu}{m['cpu']}, {m['cores_available']} cores, {m['torch_threads']} torch threads, torch {m['torch']}; "
        f"load average {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--quick", action="store_true", help="tiny model, few rounds: a smoke run in seconds")
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024], help="sequence lengths T")
    ap.add_argument("--rounds", type=int, help="timed rounds (each round times every mode once)")
    ap.add_argument("--tokens", type=int, help="tokens per step; batch = tokens // T")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model trains")
    ap.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                    help="the model's parameters and activations")
    ap.add_argument("--_worker", choices=("time", "mem"), help=argparse.SUPPRESS)
    ap.add_argument("--_mode", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--_T", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._worker:
        spec = json.loads(args._spec)
        out = worker_timing(args._T, spec) if args._worker == "time" else worker_memory(args._mode, args._T, spec)
        print(json.dumps(out))
        return

    if any(T < 2 for T in args.lengths):
        ap.error("--lengths: every sequence length must be >= 2")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA GPU is visible to torch")
    spec = dict(QUICK if args.quick else FULL, threads=args.threads, device=args.device, dtype=args.dtype)
    for name in ("rounds", "tokens"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                ap.error(f"--{name} must be >= 1, got {value}")
            spec[name] = value
    if args.json is not None and args.json.exists() and args.json.is_dir():
        ap.error(f"--json {args.json} is a directory; give a file path")
    result = run(spec, args.lengths)
    result["config"]["quick"] = bool(args.quick)
    print(table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, args.json)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
