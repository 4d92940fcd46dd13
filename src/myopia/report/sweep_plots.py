"""Plots of a compute sweep: loss vs compute, gap vs size, compute multiplier (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import NullFormatter

from myopia.report.plots import COLORS, plt, save_figure


def plot_sweep(result, out_dir: str | Path) -> list[Path]:
    """Writes loss_vs_compute.png, gap_vs_size.png and multiplier.png into ``out_dir``."""
    out = Path(out_dir)
    return [_loss_vs_compute(result, out / "loss_vs_compute.png"), _gap_vs_size(result, out / "gap_vs_size.png"),
            _multiplier(result, out / "multiplier.png")]


def _loss_vs_compute(result, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    cm = result.compute_multiplier
    c_all = [c["compute"] for c in result.cells]
    c_hi = max(c_all + ([cm["equivalent_myopic_compute"]] if cm["value"] else []))
    grid = np.geomspace(min(c_all) / 1.3, c_hi * 1.3, 200)
    for mode in ("vanilla", "myopic"):
        col = COLORS[mode]
        pts = [(c["compute"], c["test_loss"]) for c in result.cells if c["mode"] == mode]
        ax.scatter(*zip(*pts), s=12, color=col, alpha=0.4)
        means = [(s["compute"], s[mode]["mean"]) for s in result.sizes]
        ax.plot(*zip(*means), "o", color=col, label=f"{mode} (mean over seeds)")
        a, b = result.fit[mode]["a"], result.fit[mode]["b"]
        inside = grid <= max(c_all) * 1.01
        ax.plot(grid[inside], a * grid[inside] ** -b, color=col, lw=1.2, label=f"{mode} fit  L = {a:.3g}·C^-{b:.3f}")
        if mode == "myopic":  # only the myopic curve is read beyond the measured range
            ax.plot(grid[~inside], a * grid[~inside] ** -b, color=col, lw=1.2, ls=":")
    if cm["value"]:
        c = cm["at_compute"]
        target = result.fit["vanilla"]["a"] * c ** -result.fit["vanilla"]["b"]
        ax.annotate("", xy=(cm["equivalent_myopic_compute"], target), xytext=(c, target),
                    arrowprops=dict(arrowstyle="->", color="k"))
        ax.text(c, target, f"  k = {cm['value']:.3g}" + (" (extrapolated)" if cm["extrapolated"] else ""),
                va="bottom", fontsize=9)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training compute C = 6·N·tokens (FLOP)")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title("loss vs compute (dotted: extrapolated myopic fit)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _gap_vs_size(result, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    n = [s["params"] for s in result.sizes]
    g = [s["gap"]["mean"] for s in result.sizes]
    ax.plot(n, g, "o-", color=COLORS["myopic"], label="myopic − vanilla (mean over seeds)")
    if all(s["gap"]["ci95"] is not None for s in result.sizes):
        lo = [s["gap"]["ci95"][0] for s in result.sizes]
        hi = [s["gap"]["ci95"][1] for s in result.sizes]
        ax.fill_between(n, lo, hi, color=COLORS["myopic"], alpha=0.2, label="95% CI over seeds")
    for s in result.sizes:
        ax.annotate(s["size"], (s["params"], s["gap"]["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("parameters N")
    ax.set_ylabel("myopia gap (nats/token)")
    ax.set_title("myopia gap vs model size")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _multiplier(result, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = [r for r in result.multiplier_by_size if r["value"] is not None]
    if rows:
        c = [r["compute"] for r in rows]
        ax.plot(c, [r["value"] for r in rows], "o-", color="k", label="k (fits on all seeds)")
        band = [r for r in rows if r["ci95"]]
        if band:
            ax.fill_between([r["compute"] for r in band], [r["ci95"][0] for r in band], [r["ci95"][1] for r in band],
                            color="0.6", alpha=0.3, label="95% bootstrap CI over seeds")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        if all(r["value"] > 0 for r in rows):
            ax.set_yscale("log")
        for r in rows:
            ax.annotate(f"{r['size']}: {r['value']:.3g}", (r["compute"], r["value"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=8)
    ax.axhline(1, color="k", lw=0.8, ls="--")
    ax.set_xlabel("vanilla training compute C (FLOP)")
    ax.set_ylabel("compute multiplier k")
    ax.set_title("compute multiplier k: L_myopic(k·C) = L_vanilla(C)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
