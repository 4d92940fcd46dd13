"""Plot of a model series: the myopia gap per pretrained model against its size (PNG)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import NullFormatter

from myopia.report.plots import COLORS, plt, save_figure


def plot_model_series(result, out_dir: str | Path) -> list[Path]:
    """gap_vs_params.png: per myopic variant, the gap (mean over seeds, 95% CI bars) against
    parameters; right: held-out losses per model."""
    models = result.models
    n = [m["params"] for m in models]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, d in enumerate(result.detach):
        name = models[0]["variants"][d]["policy"]
        col = COLORS.get(name, "#7f7f7f")
        shift = [x * (1 + 0.03 * (k - (len(result.detach) - 1) / 2)) for x in n]  # side by side, not on top
        g = [m["variants"][d]["gap"] for m in models]
        err = [[s["mean"] - s["ci95"][0] if s["ci95"] else 0 for s in g],
               [s["ci95"][1] - s["mean"] if s["ci95"] else 0 for s in g]]
        label = "strict (kv)" if d == "kv" else "the paper's (hidden)"
        ax.errorbar(shift, [s["mean"] for s in g], yerr=err, fmt="o-", color=col, capsize=3, label=f"{name}: {label}")
        ax2.plot(n, [m["variants"][d]["myopic"]["mean"] for m in models], "o-", color=col, label=name)
    ax2.plot(n, [m["vanilla"]["mean"] for m in models], "o-", color=COLORS["vanilla"], label="vanilla")
    for m in models:
        ax.annotate(m["name"], (m["params"], 0), textcoords="offset points", xytext=(0, -14), fontsize=7,
                    ha="center")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_title(f"myopia gap after fine-tuning ({len(result.seeds)} seed(s), 95% CI)")
    ax.set_ylabel("myopic − vanilla held-out loss (nats/token)")
    ax2.set_title("held-out loss (mean over seeds)")
    ax2.set_ylabel("nats/token")
    for a in (ax, ax2):
        a.set_xscale("log")
        a.xaxis.set_minor_formatter(NullFormatter())
        a.set_xlabel("parameters (without the input embedding)")
        a.legend(fontsize=8)
    return [save_figure(fig, Path(out_dir) / "gap_vs_params.png")]
