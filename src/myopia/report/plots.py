"""Plots (PNG, matplotlib's non-interactive backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"vanilla": "#1f77b4", "myopic": "#d62728", "myopic-hidden": "#ff7f0e"}


def save_figure(fig, path: str | Path) -> Path:
    """Tight layout, PNG at 110 dpi, figure closed (so long runs do not accumulate figures)."""
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _color(key: str) -> str:
    for name in sorted(COLORS, key=len, reverse=True):
        if key.startswith(name):
            return COLORS[name]
    return "#7f7f7f"


def plot_gap(result, path: str | Path) -> Path:
    """Left: held-out loss curves of every run. Right: per-position gap with its 95% CI."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    seen = set()
    for key, curve in sorted(result.curves.items()):
        pts = [(r["step"], r["val_loss"]) for r in curve if "val_loss" in r]
        if not pts:
            continue
        label = key.rsplit("-seed", 1)[0]
        ax1.plot(*zip(*pts), color=_color(label), alpha=0.8, label=None if label in seen else label)
        seen.add(label)
    ax1.axhline(result.trivial_loss, color="k", ls="--", lw=1, label="trivial")
    ax1.set_xlabel("step")
    ax1.set_ylabel("held-out loss")
    ax1.set_title(f"{result.task.get('name', 'task')}: training curves ({len(result.seeds)} seeds)")
    ax1.legend()
    for d, var in result.variants.items():
        T = len(var["per_position_gap"])
        xs = list(range(T))
        col = _color(var["policy"])
        ax2.plot(xs, var["per_position_gap"], color=col, marker=".", label=f"{var['policy']} − vanilla")
        cis = var["per_position_gap_ci95"]
        if all(c is not None for c in cis):  # one seed: no interval to draw
            ax2.fill_between(xs, [c[0] for c in cis], [c[1] for c in cis], color=col, alpha=0.2)
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xlabel("position")
    ax2.set_ylabel("myopia gap (loss)")
    ax2.set_title("per-position gap, mean and 95% CI over seeds")
    ax2.legend()
    return save_figure(fig, path)
