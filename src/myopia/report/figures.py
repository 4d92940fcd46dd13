"""The figures of every measure, keyed by the measure's name.

A measure returns data (its typed result, serialised to ``results.json``); this module is
the only place that turns it into PNGs. Commands call :func:`draw` after a measure has
run, and ``myopia report`` calls it again on the ``results.json`` files it finds, so a
figure can always be redrawn from the committed raw output without retraining.

A new measure adds one entry to ``FIGURES``: ``name -> fn(result, out_dir) -> [paths]``,
where ``result`` has the fields of the measure's result as attributes.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Callable


def _gap(r, out: Path) -> list[Path]:
    from myopia.report.plots import plot_gap

    return [plot_gap(r, out / "gap.png")]


def _horizon(r, out: Path) -> list[Path]:
    from myopia.report.horizon_plots import plot_horizon

    return [plot_horizon(r, out / "horizon.png")]


def _bonus(r, out: Path) -> list[Path]:
    from myopia.report.bonus_plots import plot_bonus

    return [plot_bonus(r, out / "bonus.png")]


def _decompose(r, out: Path) -> list[Path]:
    from myopia.report.decompose_plots import plot_context_lengths, plot_decomposition, plot_gradient_tracking

    name = r.task.get("name", "task")
    paths = [plot_decomposition(r, out / "decompose.png")]
    if r.context_lengths:
        paths.append(plot_context_lengths(r.context_lengths, out / "context_lengths.png",
                                          title=f"{name}: W_K/W_V gradient vs context length"))
    if r.gradient_tracking:
        paths.append(plot_gradient_tracking(r.gradient_tracking, out / "gradient_tracking.png",
                                            title=f"{name}: vanilla training"))
    return paths


def _sweep(r, out: Path) -> list[Path]:
    from myopia.report.sweep_plots import plot_sweep

    return plot_sweep(r, out)


def _consequences(r, out: Path) -> list[Path]:
    from myopia.report.consequences_plots import plot_consequences

    return [plot_consequences(r, out / "consequences.png")]


def _probe(r, out: Path) -> list[Path]:
    from myopia.report.probe_plots import plot_feature, plot_future_tokens, plot_planning

    paths = []
    if any("future_token" in m for m in r.models.values()):
        paths.append(plot_future_tokens(r, out / "probe.png"))
    if any("feature_r2" in m for m in r.models.values()):
        paths.append(plot_feature(r, out / ("probe_feature.png" if paths else "probe.png")))
    if getattr(r, "planning", None):
        paths.append(plot_planning(r, out / "planning.png"))
    return paths


def _model_series(r, out: Path) -> list[Path]:
    from myopia.report.model_series_plots import plot_model_series

    return plot_model_series(r, out)


FIGURES: dict[str, Callable[[SimpleNamespace, Path], list[Path]]] = {
    "gap": _gap,
    "horizon": _horizon,
    "bonus": _bonus,
    "decompose": _decompose,
    "sweep": _sweep,
    "consequences": _consequences,
    "probe": _probe,
    "model_series": _model_series,
}


def draw(result, out_dir: str | Path) -> list[Path]:
    """Write the figures of ``result`` (a measure's result, or its ``results.json`` as a dict
    with its ``measure`` name) into ``out_dir``; returns their paths (none for a measure
    without figures)."""
    from myopia import distributed

    data = result if isinstance(result, dict) else result.to_dict()
    fn = FIGURES.get(data.get("measure", ""))
    if fn is None or not distributed.is_main():  # under torchrun rank 0 draws
        return []
    return fn(SimpleNamespace(**data), Path(out_dir))
