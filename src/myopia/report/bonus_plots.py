"""Plot of the local myopia bonus: φ's and the control's training curves against L(θ0), and the bonus per position."""

from __future__ import annotations

from pathlib import Path

from myopia.report.plots import plt, save_figure


def plot_bonus(result, path: str | Path) -> Path:
    """Left: held-out loss of φ and of the control θ0′ during training, against L(θ0). Right: the
    bonus L(θ0′) - L(φ*) per position."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, curve in result.curves.items():
        pts = [(r["step"], r["val_loss"]) for r in curve if "val_loss" in r]
        tr = [(r["step"], r["train_loss"]) for r in curve if "train_loss" in r]
        if tr:
            ax1.plot(*zip(*tr), alpha=0.35, label=f"{key} (train)")
        if pts:
            ax1.plot(*zip(*pts), marker="o", label=f"{key} (held-out)")
    ax1.axhline(result.base_loss, color="k", ls="--", lw=1, label="L(θ0)")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax1.set_title(f"local myopia bonus: φ trained from {result.init}, control θ0′ vanilla")
    ax1.legend(fontsize=8)
    for var in result.variants.values():
        ax2.plot(var["per_position_bonus"], label=f"{var['policy']}: {var['bonus']['mean']:+.4f}")
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xlabel("position")
    ax2.set_ylabel("L(θ0′) - L(φ*)")
    ax2.set_title("bonus per position (held-out)")
    ax2.legend(fontsize=8)
    return save_figure(fig, path)
