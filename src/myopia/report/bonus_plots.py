"""Plot of the local myopia bonus: the validation curves of φ and of the control θ0′, and the bonus per position."""

from __future__ import annotations

from pathlib import Path

from myopia.report.plots import plt, save_figure


def plot_bonus(result, path: str | Path) -> Path:
    """Left: validation loss of φ and of the control θ0′ during training (step 0 is θ0 itself),
    the selected step of each starred. Right: the bonus L(θ0′) - L(φ*) per test position."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    selected = {f"bonus-{v['policy']}": v.get("selected_step") for v in result.variants.values()}
    selected["control-vanilla"] = getattr(result, "control_selected_step", None)
    for key, curve in result.curves.items():
        pts = dict((r["step"], r["val_loss"]) for r in curve if "val_loss" in r)
        if not pts:
            continue
        (line,) = ax1.plot(list(pts), list(pts.values()), marker="o", ms=3, label=key)
        if selected.get(key) in pts:
            ax1.plot([selected[key]], [pts[selected[key]]], marker="*", ms=13, color=line.get_color(), ls="")
    ax1.set_xlabel("step")
    ax1.set_ylabel("validation loss")
    ax1.set_title(f"φ (from {result.init}) and control θ0′ (vanilla); ★ selected")
    ax1.legend(fontsize=8)
    for var in result.variants.values():
        ax2.plot(var["per_position_bonus"], label=f"{var['policy']}: {var['bonus']['mean']:+.4f}")
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xlabel("position")
    ax2.set_ylabel("L(θ0′) - L(φ*)")
    ax2.set_title("bonus per position (test)")
    ax2.legend(fontsize=8)
    return save_figure(fig, path)
