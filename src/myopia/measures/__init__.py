"""Measures: each a function that describes its training runs, calls the training loop
through :mod:`myopia.runs`, and returns a typed result that also lands in results.json."""

from myopia.measures.gap import GapResult, myopia_gap

__all__ = ["myopia_gap", "GapResult"]
