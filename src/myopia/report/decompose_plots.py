"""Plots of the offset decomposition: per-offset profile, myopic vs future share per group,
future share vs context length, and myopic/future gradients during training."""

from __future__ import annotations

import re
from pathlib import Path

from myopia.report.plots import plt, save_figure

KIND_COLORS = {
    "all:W_Q": "#1f77b4", "all:W_K": "#d62728", "all:W_V": "#ff7f0e", "all:W_O": "#9467bd",
    "all:MLP": "#2ca02c", "all:norms": "#8c564b", "embeddings": "#17becf", "head": "#7f7f7f", "total": "k",
}


def plot_decomposition(result, path: str | Path) -> Path:
    """Left: share of each group's gradient coming from offset tau. Right: myopic vs future
    share (of the vanilla gradient, along itself) per parameter group."""
    has_profile = bool(result.profile)
    fig, axes = plt.subplots(1, 2 if has_profile else 1, figsize=(13 if has_profile else 7, 4.5), squeeze=False)
    axes = axes[0]
    if has_profile:
        ax = axes[0]
        xs = list(range(len(result.offsets)))
        for g, col in KIND_COLORS.items():
            if g not in result.profile:
                continue
            row = result.profile[g]
            ax.errorbar(
                xs, row["share"], yerr=row["share_se"] if result.sampled else None, color=col, marker="o", ms=3,
                capsize=2, lw=2.2 if g == "total" else 1.2, label=g.replace("all:", ""),
            )
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(xs, [("τ " if i == 0 else "") + o for i, o in enumerate(result.offsets)])
        ax.set_xlabel("offset τ = j − i (loss position j, computation at position i)")
        ax.set_ylabel("share of the vanilla gradient  ⟨G(τ), G⟩ / ‖G‖²")
        how = f"{len(result.positions)} of {result.seq_len} loss positions sampled (±1 s.e.)" if result.sampled else "exact"
        ax.set_title(f"per-offset profile, T = {result.seq_len} ({how})", fontsize=10)
        ax.legend(fontsize=8, ncol=2)
    ax = axes[-1]
    groups = [g for g in result.split if not g.startswith("all:") and g != "total"]
    groups = [g for g in groups if result.split[g]["vanilla_sq_norm"] > 0]
    xs = range(len(groups))
    w = 0.4
    ax.bar([x - w / 2 for x in xs], [result.split[g]["myopic_share"] for g in groups], w, color="#1f77b4", label="G(0): own loss (myopic)")
    ax.bar([x + w / 2 for x in xs], [result.split[g]["future_share"] for g in groups], w, color="#d62728", label="Σ_{τ≥1} G(τ): later losses")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(list(xs), groups, rotation=60, ha="right", fontsize=8)
    lo = min([0.0] + [min(result.split[g]["myopic_share"], result.split[g]["future_share"]) for g in groups])
    ax.set_ylim(lo - 0.05, 1.3)  # room for the legend above the bars
    ax.set_ylabel("share of the group's vanilla gradient")
    ax.set_title(f"{result.task.get('name', 'task')}: where each group's gradient comes from (shares add to 1)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    return save_figure(fig, path)


def plot_context_lengths(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Future share of the W_K/W_V gradient vs context length N, with the naive
    'every later query reads every key equally' prediction (N - 1)/(N + 1)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    Ns = [r["N"] for r in rows]
    ax.plot(Ns, [r["kv_future_share"] for r in rows], "o-", color="#d62728", lw=2, label="W_K+W_V, all layers: ⟨F, G⟩/‖G‖²")
    ax.plot(Ns, [r["kv_future_norm_share"] for r in rows], "s--", color="#d62728", alpha=0.6, label="W_K+W_V: ‖F‖² / (‖G(0)‖² + ‖F‖²)")
    layers = sorted({h for r in rows for h in r["kv_future_share_per_layer"]}, key=lambda h: int(re.sub(r"\D", "", h) or 0))
    for h in layers:
        ax.plot(Ns, [r["kv_future_share_per_layer"].get(h, float("nan")) for r in rows], ".:", lw=1, label=f"W_K+W_V, layer {h[1:]}")
    ax.plot(Ns, [r["uniform_reading_prediction"] for r in rows], "k--", lw=1, label="uniform reading: (N−1)/(N+1)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(Ns, [str(n) for n in Ns])
    ax.set_xlabel("context length N")
    ax.set_ylabel("future share of the key/value gradient")
    ax.set_title(title or "W_K/W_V gradient from future losses vs context length", fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_gradient_tracking(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Norms of the myopic and future gradients and their cosine during training."""
    rows = [r for r in rows if "grad_myopic_norm" in r]
    if not rows:
        raise ValueError("no gradient-tracking rows: train with track_gradients_every > 0")
    steps = [r["step"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(steps, [r["grad_myopic_norm"] for r in rows], color="#1f77b4", label="‖G(0)‖ (myopic)")
    ax1.plot(steps, [r["grad_future_norm"] for r in rows], color="#d62728", label="‖vanilla − G(0)‖ (future)")
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("gradient norm (training batch)")
    ax1.legend()
    ax2.plot(steps, [r["grad_cos_myopic_future"] for r in rows], color="k", label="cos(G(0), future)")
    if "grad_future_share" in rows[0]:
        ax2.plot(steps, [r["grad_future_share"] for r in rows], color="#d62728", ls="--", label="future share ⟨F, G⟩/‖G‖²")
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_xlabel("step")
    ax2.legend()
    ax1.set_title(title or "myopic and future gradients during training", fontsize=10)
    ax2.set_title("gradient angle", fontsize=10)
    return save_figure(fig, path)


def plot_gradient_tracking_from_run(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Plot the grad_* rows of a run directory's metrics.jsonl (trained with
    ``track_gradients_every``) to ``run_dir/gradient_tracking.png``."""
    import json

    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(f"{metrics} does not exist; give a run directory written by the training loop")
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return plot_gradient_tracking(rows, path or run_dir / "gradient_tracking.png", title=run_dir.name)
