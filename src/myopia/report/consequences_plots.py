"""Plot of output-side myopia: self-fulfilling bias per model, free-running drift, loop rates."""

from __future__ import annotations

from pathlib import Path

from myopia.report.plots import plt, save_figure

MODEL_COLORS = {"vanilla": "#1f77b4", "myopic": "#d62728", "myopic-hidden": "#ff7f0e", "control": "#2ca02c",
                "finetune": "#9467bd", "source": "#000000"}


def plot_consequences(result, path: str | Path) -> Path:
    """Top left: bias (mean, 95% CI over seeds, seeds as dots) per model; 0 is the source.
    Top right: loop rates, sampled and greedy (Wilson CI). Bottom: n-gram divergence from the
    source vs generated length, sampled and greedy; the exact source's curve is the floor of a
    finite sample."""
    fig, ((ax1, ax3), (ax2, ax4)) = plt.subplots(2, 2, figsize=(13, 8.5))
    names = list(result.models)
    for i, name in enumerate(names):
        m, col = result.models[name], MODEL_COLORS.get(name, "#7f7f7f")
        b = m["bias"]
        if b["ci95"] is not None:
            ax1.errorbar([i], [b["mean"]], yerr=[[b["mean"] - b["ci95"][0]], [b["ci95"][1] - b["mean"]]],
                         color=col, marker="o", ms=7, capsize=5, lw=1.8)
        else:
            ax1.plot([i], [b["mean"]], color=col, marker="o", ms=7)
        ax1.plot([i] * len(m["bias_per_seed"]), m["bias_per_seed"], ".", color=col, alpha=0.5)
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_xticks(range(len(names)), ["myopic\n(detach=kv)" if n == "myopic" else n for n in names], fontsize=8)
    ax1.set_ylabel("log-odds toward easy entries vs q (nats)")
    ax1.set_title(f"self-fulfilling bias (mean, 95% CI over {len(result.seeds)} seeds)", fontsize=10)

    rows = [("source", result.source)] + [(n, result.models[n]) for n in names]
    for ax, decoding in ((ax2, "sampled"), (ax4, "greedy")):
        for name, m in rows:
            d = m if decoding == "sampled" else m["greedy"]
            ax.plot(result.lengths, d["ngram_divergence"], color=MODEL_COLORS.get(name, "#7f7f7f"), marker=".",
                    label=name + (" (floor)" if name == "source" and decoding == "sampled" else ""))
        ax.set_xlabel("generated length (end of window)")
        ax.set_ylabel(f"TV of the {result.drift['ngram']}-gram law from the source's")
        ax.set_title(f"free-running drift, {decoding} (windows of {result.drift['window']} tokens, mean over seeds)",
                     fontsize=10)
        ax.legend(fontsize=7)

    width = 0.38
    for i, (name, m) in enumerate(rows):
        col = MODEL_COLORS.get(name, "#7f7f7f")
        for j, d in enumerate((m, m["greedy"])):
            lo, hi = d["loop_rate_ci95"]
            ax3.bar([i + (j - 0.5) * width], [d["loop_rate"]], width, color=col, alpha=1.0 if j == 0 else 0.45,
                    yerr=[[d["loop_rate"] - lo], [hi - d["loop_rate"]]], capsize=3)
    ax3.set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax3.set_ylim(0, 1.05)
    ax3.set_ylabel(f"sequences ending in a loop (last {result.drift['loop_window']} tokens)")
    ax3.set_title("loop rate: sampled (dark), greedy (light); Wilson 95% CI", fontsize=10)
    return save_figure(fig, path)
