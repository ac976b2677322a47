"""Orchestration for the columnar HEP analysis: running, histogram I/O, inference, plots, CLI."""

from analysis.errors import AnalysisError

__all__ = ["AnalysisError"]
