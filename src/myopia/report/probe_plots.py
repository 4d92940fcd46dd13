"""Plots of `myopia probe`: what each layer carries about future tokens or the task feature,
next to what erasing it costs."""

from __future__ import annotations

from pathlib import Path

from myopia.report.plots import _color, plt, save_figure


def _heat(ax, grid, ks, layers, title, cmap, vmin, vmax, fmt):
    im = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
    ax.set_xticks(range(len(layers)), layers)
    ax.set_yticks(range(len(ks)), [f"t+{k}" for k in ks])
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_title(title, fontsize=9)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v is not None:
                ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7)
    return im


def plot_future_tokens(result, path: str | Path) -> Path:
    """k × layer heatmaps per model: top row the probe's cross-entropy gain over the
    skip-bigram baseline (nats; > 0: the state says more about token t+k than the current
    token does), bottom row the loss increase at t+k when the target is erased."""
    models = {n: m for n, m in result.models.items() if "future_token" in m}
    names = list(models)
    ks = sorted(next(iter(models.values()))["future_token"], key=int)
    layers = sorted(next(iter(models.values()))["future_token"][ks[0]], key=int)
    has_causal = all("causal" in m for m in models.values())
    rows = 2 if has_causal else 1
    fig, axes = plt.subplots(rows, len(names), figsize=(3.6 * len(names) + 1, 2.6 * rows + 0.6), squeeze=False)
    gains = {n: [[m["future_token"][k][layer]["gain_over_bigram"]["mean"] for layer in layers] for k in ks]
             for n, m in models.items()}
    g_max = max(abs(v) for g in gains.values() for row in g for v in row) or 1.0
    for j, n in enumerate(names):
        im = _heat(axes[0][j], gains[n], ks, layers, f"{n}: probe gain over bigram (nats)", "RdBu", -g_max, g_max, "+.2f")
        if j == len(names) - 1:
            fig.colorbar(im, ax=axes[0][j], fraction=0.05)
    if has_causal:
        effects = {n: [[m["causal"][k][layer]["effect"] for layer in layers] for k in ks] for n, m in models.items()}
        e_max = max(abs(v) for e in effects.values() for row in e for v in row) or 1.0
        for j, n in enumerate(names):
            im = _heat(axes[1][j], effects[n], ks, layers, f"{n}: Δloss at t+k when erased", "PuOr_r", -e_max, e_max,
                       "+.2f")
            if j == len(names) - 1:
                fig.colorbar(im, ax=axes[1][j], fraction=0.05)
    fig.suptitle(f"{result.task.get('name', 'task')}: future-token probes", fontsize=10)
    return save_figure(fig, path)


def plot_feature(result, path: str | Path) -> Path:
    """Left: the task feature's probe R² per layer and model (95% CI over seeds). Right: the
    loss increase when it is erased, at the position itself (present) and later (future)."""
    models = {n: m for n, m in result.models.items() if "feature_r2" in m}
    has_causal = all("feature" in m.get("causal", {}) for m in models.values())
    fig, axes = plt.subplots(1, 2 if has_causal else 1, figsize=(11 if has_causal else 6, 4), squeeze=False)
    ax = axes[0][0]
    for n, m in models.items():
        layers = sorted(m["feature_r2"], key=int)
        ys = [m["feature_r2"][layer] for layer in layers]
        ax.plot([int(layer) for layer in layers], ys, marker="o", color=_color(n), label=n)
        cis = m.get("feature_r2_ci95", {})
        if cis and all(cis.get(layer) for layer in layers):
            ax.fill_between([int(layer) for layer in layers], [cis[layer][0] for layer in layers],
                            [cis[layer][1] for layer in layers], color=_color(n), alpha=0.2)
    ax.set_xlabel("layer (0 = embeddings, l = after block l)")
    ax.set_ylabel("held-out R²")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("task feature probe (e.g. sin(a·x_t) at t)", fontsize=9)
    ax.legend(fontsize=8)
    if has_causal:
        ax = axes[0][1]
        names = list(models)
        layers = sorted(next(iter(models.values()))["causal"]["feature"], key=int)
        width = 0.8 / (2 * len(names))
        for i, n in enumerate(names):
            for part, offset, hatch in (("present", 0, ""), ("future", 1, "//")):
                xs = [int(layer) + (2 * i + offset - len(names) + 0.5) * width for layer in layers]
                cells = [models[n]["causal"]["feature"][layer][part] for layer in layers]
                ys = [c["mean"] for c in cells]
                err = [[y - c["ci95"][0] for y, c in zip(ys, cells)], [c["ci95"][1] - y for y, c in zip(ys, cells)]] \
                    if all(c.get("ci95") for c in cells) else None
                ax.bar(xs, ys, width, yerr=err, color=_color(n), hatch=hatch, alpha=0.8, capsize=2,
                       label=f"{n}, {part}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks([int(layer) for layer in layers])
        ax.set_xlabel("layer where the feature is erased")
        ax.set_ylabel("loss increase (summed over positions)")
        ax.set_title("erasing the feature at t: loss at t (present) and after t (future)", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"{result.task.get('name', 'task')}: feature probe and its causal test", fontsize=10)
    return save_figure(fig, path)


VARIANT_LABELS = {"myopic": "myopic (strict, kv)", "myopic-hidden": "myopic-hidden (paper's, hidden)"}


def plot_planning(result, path: str | Path) -> Path:
    """Left: top-1 of the probe for the planned rhyme class at the line break, per layer and
    model (95% CI). Right: the share of greedy lines ending in the steered class when the
    state at the line break is steered at that layer (95% CI), the same share unsteered
    (open markers) and chance."""
    plans = result.planning
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(plans)
    for i, (n, m) in enumerate(plans.items()):
        shift = (i - (len(names) - 1) / 2) * 0.08  # side by side, so the intervals do not hide each other
        for ax, cells, key in ((ax1, m["probe"], "top1"), (ax2, m["steering"], "share")):
            layers = sorted(cells, key=int)
            xs = [int(layer) + shift for layer in layers]
            ys = [cells[layer][key] for layer in layers]
            cis = [cells[layer].get("ci95") or cells[layer].get("wilson95") for layer in layers]
            err = [[y - c[0] for y, c in zip(ys, cis)], [c[1] - y for y, c in zip(ys, cis)]] if all(cis) else None
            ax.errorbar(xs, ys, yerr=err, marker="o", color=_color(n), capsize=3, label=VARIANT_LABELS.get(n, n))
        layers = sorted(m["steering"], key=int)
        ax2.plot([int(layer) + shift for layer in layers], [m["steering"][layer]["unsteered"] for layer in layers],
                 marker="o", mfc="none", ls=":", color=_color(n), label=f"{VARIANT_LABELS.get(n, n)}, unsteered")
    chance = next(iter(plans.values()))["chance"]
    alpha = next(iter(plans.values()))["alpha"]
    for ax in (ax1, ax2):
        ax.axhline(chance, color="k", lw=0.8, ls="--", label="chance")
        ax.set_xlabel("layer (0 = embeddings, l = after block l)")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xticks(sorted({int(layer) for m in plans.values() for layer in m["probe"]}))
    ax1.set_ylabel("held-out top-1")
    ax1.set_title("probe: rhyme class of line 2, read at the line break", fontsize=9)
    ax1.legend(fontsize=8)
    ax2.set_ylabel("share of lines ending in the steered class")
    ax2.set_title(f"steering: + {alpha:g}·(μ_r' − μ_r) at the line break, line 2 written greedily", fontsize=9)
    ax2.legend(fontsize=7)
    fig.suptitle(f"{result.task.get('name', 'task')}: the planned rhyme at the line break", fontsize=10)
    return save_figure(fig, path)
