"""Measures: each a function that describes its training runs, calls the training loop
through :mod:`myopia.runs`, and returns a typed result that also lands in results.json."""

from myopia.measures.decompose import DecomposeResult, decompose_gradients
from myopia.measures.bonus import BonusResult, local_myopia_bonus
from myopia.measures.gap import GapResult, myopia_gap
from myopia.measures.horizon import HorizonResult, horizon_curve

__all__ = [
    "local_myopia_bonus", "BonusResult",
    "myopia_gap", "GapResult", "decompose_gradients", "DecomposeResult",
    "horizon_curve", "HorizonResult",
]
