"""Plots of a compute sweep: loss vs compute, gap vs size, compute multiplier per size (PNG).

Every variant of the sweep is drawn beside vanilla: strict myopia (``kv``) and the paper's
(``hidden``), in the colours of :data:`myopia.report.plots.COLORS`.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import NullFormatter

from myopia.report.plots import COLORS, plt, save_figure

MARKERS = {">": "^", "<": "v"}  # a bound: k above (triangle up) or below (triangle down) the marker


def plot_sweep(result, out_dir: str | Path) -> list[Path]:
    """Writes loss_vs_compute.png, gap_vs_size.png and multiplier.png into ``out_dir``."""
    out = Path(out_dir)
    return [_loss_vs_compute(result, out / "loss_vs_compute.png"), _gap_vs_size(result, out / "gap_vs_size.png"),
            _multiplier(result, out / "multiplier.png")]


def _variants(result) -> list[tuple[str, str, str]]:
    """(variant, policy name, label) of every myopic variant of the sweep."""
    return [(d, result.sizes[0][d]["policy"], label) for d, label in result.labels.items()]


def _log_x(ax) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


def _loss_vs_compute(result, path: Path) -> Path:
    """Every cell, the per-size means joined (the measured curves k is read from) and an
    arrow from C to k·C at vanilla's loss wherever k is interpolated."""
    fig, ax = plt.subplots(figsize=(7, 4.8))
    curves = [("vanilla", "vanilla", [s["vanilla"]["mean"] for s in result.sizes])]
    curves += [(pol, label, [s[d]["myopic"]["mean"] for s in result.sizes]) for d, pol, label in _variants(result)]
    for policy, label, means in curves:
        col = COLORS.get(policy, "#7f7f7f")
        pts = [(c["compute"], c["test_loss"]) for c in result.cells if c["policy"] == policy]
        ax.scatter(*zip(*pts), s=10, color=col, alpha=0.35)
        ax.plot([s["compute"] for s in result.sizes], means, "o-", color=col, lw=1.2, label=f"{label} (mean over seeds)")
    for d, pol, _ in _variants(result):
        for s, k in zip(result.sizes, result.multiplier[d]):
            if k["method"] == "interpolated" and abs(k["value"] - 1) > 1e-9:
                y = s["vanilla"]["mean"]
                ax.annotate("", xy=(k["compute"] * k["value"], y), xytext=(k["compute"], y),
                            arrowprops=dict(arrowstyle="->", color=COLORS.get(pol, "k"), lw=1))
    _log_x(ax)
    ax.set_xlabel("training compute C = 6·(N + n_layer·T·d)·tokens (FLOP)")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title("loss vs compute (arrows: interpolated k, C → k·C)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _gap_vs_size(result, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    n = [s["params"] for s in result.sizes]
    for d, pol, label in _variants(result):
        g = [s[d]["gap"] for s in result.sizes]
        mean = [x["mean"] for x in g]
        err = None
        if all(x["ci95"] is not None for x in g):
            err = [[m - x["ci95"][0] for m, x in zip(mean, g)], [x["ci95"][1] - m for m, x in zip(mean, g)]]
        ax.errorbar(n, mean, yerr=err, fmt="o-", color=COLORS.get(pol, "k"), capsize=3,
                    label=f"{label}" + (": mean, 95% CI over seeds" if err else ": mean"))
    for s in result.sizes:
        ax.annotate(s["size"], (s["params"], 0), textcoords="offset points", xytext=(0, -12), fontsize=7,
                    ha="center")
    ax.axhline(0, color="k", lw=0.8)
    _log_x(ax)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("myopia gap, myopic − vanilla (nats/token)")
    ax.set_title("myopia gap vs model size")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _multiplier(result, path: Path) -> Path:
    """k per size: interpolated values with their interval, bounds as triangles pointing
    the way k lies (never a value beyond the measured compute)."""
    fig, ax = plt.subplots(figsize=(6.5, 5.4))
    variants = _variants(result)
    written = set()  # one label per bound, however many variants share it
    for j, (d, pol, label) in enumerate(variants):
        col = COLORS.get(pol, "k")
        shift = 1.06 ** (j - (len(variants) - 1) / 2)  # side by side at one compute
        inter = [k for k in result.multiplier[d] if k["method"] == "interpolated"]
        if inter:
            x = [k["compute"] * shift for k in inter]
            y = [k["value"] for k in inter]
            err = [[v - (k["ci95"] or [v, v])[0] for v, k in zip(y, inter)],
                   [(k["ci95"] or [v, v])[1] - v for v, k in zip(y, inter)]]
            ax.errorbar(x, y, yerr=err, fmt="o", color=col, capsize=3, label=f"{label}: interpolated, 95% CI")
        for direction, marker in MARKERS.items():
            bound = [k for k in result.multiplier[d] if k["method"] == "bound" and k["direction"] == direction]
            if bound:
                ax.scatter([k["compute"] * shift for k in bound], [k["value"] for k in bound], marker=marker, s=50,
                           facecolors="none", edgecolors=col, label=f"{label}: bound, k {direction} marker")
                for k in bound:
                    text = f"k {direction} {k['value']:.3g}"
                    if (k["size"], text) not in written:
                        written.add((k["size"], text))
                        ax.annotate(text, (k["compute"], k["value"]), fontsize=7, textcoords="offset points",
                                    xytext=(-8, 8 if direction == ">" else -14))
    ax.axhline(1, color="k", lw=0.8, ls="--")
    _log_x(ax)
    ax.margins(x=0.08)
    ax.set_yscale("log")
    ax.set_xlabel("vanilla training compute C (FLOP)")
    ax.set_ylabel("compute multiplier k")
    ax.set_title("k with L_myopic(k·C) = L_vanilla(C), read off the measured curves")
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16))  # below: bounds sit at every height
    return save_figure(fig, path)
