"""Measures: each a function that says which training runs it needs and how to summarise
them; :mod:`myopia.measures.scaffold` does the rest (output directory, config check,
training, provenance, results.json). Figures are drawn by :mod:`myopia.report`."""

from myopia.measures.decompose import DecomposeResult, decompose_gradients
from myopia.measures.bonus import BonusResult, local_myopia_bonus
from myopia.measures.gap import GapResult, myopia_gap
from myopia.measures.horizon import HorizonResult, horizon_curve
from myopia.measures.probe import ProbeResult, future_token_probes
from myopia.measures.model_series import ModelSeriesResult, model_series
from myopia.measures.scaffold import MeasureResult, run_measure
from myopia.measures.sweep import SweepResult, compute_sweep

__all__ = [
    "local_myopia_bonus", "BonusResult",
    "myopia_gap", "GapResult", "decompose_gradients", "DecomposeResult",
    "horizon_curve", "HorizonResult", "future_token_probes", "ProbeResult", "compute_sweep", "SweepResult", "MeasureResult", "run_measure",
    "model_series", "ModelSeriesResult",
]
