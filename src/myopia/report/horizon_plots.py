"""Plot of held-out loss vs gradient horizon (band h per attention hop, and block c)."""

from __future__ import annotations

from pathlib import Path

from myopia.report.plots import plt, save_figure

KIND_COLORS = {"band": "#1f77b4", "block": "#2ca02c", "vanilla": "#d62728"}


def plot_horizon(result, path: str | Path) -> Path:
    """One point per horizon: mean held-out loss with its 95% CI over seeds (percentile
    bootstrap) and every seed's loss beside it; trivial predictor dashed. x is categorical
    (0, 1, 2, ..., inf, block=c)."""
    rows = result.horizons
    fig, ax = plt.subplots(figsize=(8, 4.8))
    xs = list(range(len(rows)))
    for x, r in zip(xs, rows):
        col = KIND_COLORS[r["kind"]]
        m = r["loss"]["mean"]
        if r["loss"]["ci95"] is not None:
            lo, hi = r["loss"]["ci95"]
            ax.errorbar([x], [m], yerr=[[m - lo], [hi - m]], color=col, marker="o", ms=7, capsize=4, lw=1.5)
        else:
            ax.plot([x], [m], color=col, marker="o", ms=7)
        seeds = r["loss_per_seed"]  # spread sideways so that equal losses stay visible, right of the mean
        ax.plot([x + 0.12 + 0.16 * k / max(len(seeds) - 1, 1) for k in range(len(seeds))], seeds, "x", ms=5,
                color=col, alpha=0.8, label="one seed" if x == 0 else None)
    band = [(x, r["loss"]["mean"]) for x, r in zip(xs, rows) if r["kind"] in ("band", "vanilla")]
    if len(band) > 1:
        ax.plot(*zip(*band), color=KIND_COLORS["band"], lw=1, alpha=0.6)
    ax.axhline(result.trivial_loss, color="k", ls="--", lw=1, label=f"trivial predictor ({result.trivial_loss:.3f})")
    labels = []
    for r in rows:
        h = r["horizon"]
        if r["kind"] == "band":
            labels.append(f"h={h}" + ("\n(myopic)" if h == "0" else f"\n(≤{min(int(h) * result.n_layer, result.task.get('seq_len', 10**9) - 1)} back)"))
        elif r["kind"] == "block":
            labels.append(h + "\n(exact)")
        else:
            labels.append("inf\n(vanilla)")
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_xlabel(f"gradient horizon: h is per attention hop ({result.n_layer} layers: a loss reaches ≤ {result.n_layer}·h positions back); "
                  f"block=c is exact", fontsize=8)
    ax.set_ylabel("held-out loss")
    n = len(result.seeds)
    ax.set_title(f"{result.task.get('name', 'task')}: loss vs gradient horizon (mean, bootstrap 95% CI and each of {n} seed{'s' if n > 1 else ''})", fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
