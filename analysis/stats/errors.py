"""The statistics core's user-facing error: a one-line message naming the culprit (CLI exit code 2)."""

from __future__ import annotations

from analysis.errors import AnalysisError


class StatsError(AnalysisError):
    """Bad statistical input (unknown parameter, impossible limit, unusable model) or an unrecoverable fit."""
