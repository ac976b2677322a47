"""Columnar HEP analysis: everything around the chunks — execution, statistics, plots, workflows, CLI.

The public API, one function per workflow step (the ``ana`` CLI calls the same names)::

    from analysis import run_processor, run_user_processor, RunOptions, run_ttbar, run_fit, run_demo
    from analysis import run_search, run_ftest, reinterpret_histograms, reinterpret_workspace, scale_histogram
    from analysis import derive_reweighting, apply_reweighting, extract_features, train_and_evaluate, score_region
    import analysis; analysis.set_logging()   # notebooks: libraries' warnings off (libraries="verbose" shows them)

Names are imported on first use (PEP 562), so ``import analysis`` is cheap and changes no global state.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, str]] = {
    # errors
    "UserError": ("analysis.errors", "UserError"),
    "AnalysisError": ("analysis.errors", "AnalysisError"),
    "ConfigError": ("analysis.errors", "ConfigError"),
    # execution: any coffea processor over a fileset, reliably
    "run_processor": ("analysis.execution.runner", "run_processor"),
    "RunOptions": ("analysis.execution.options", "RunOptions"),
    "run_user_processor": ("analysis.execution.user", "run_user_processor"),
    "RetryPolicy": ("analysis.execution.retries", "RetryPolicy"),
    # histogram I/O
    "read_histograms": ("analysis.histio", "read_histograms"),
    "save_histograms": ("analysis.histio", "save_histograms"),
    "histogram_digest": ("analysis.histio", "histogram_digest"),
    # AGC ttbar
    "run_ttbar": ("analysis.agc.run", "run_ttbar"),
    "RunResult": ("analysis.agc.run", "RunResult"),
    "run_fit": ("analysis.agc.inference", "run_fit"),
    "run_demo": ("analysis.agc.demo", "run_demo"),
    # diphoton resonance search and background modelling
    "run_search": ("analysis.resonance.search", "run_search"),
    "run_ftest": ("analysis.resonance.ftest_workflow", "run_ftest"),
    # reinterpretation
    "reinterpret_histograms": ("analysis.recast.reinterpret", "reinterpret_histograms"),
    "reinterpret_workspace": ("analysis.recast.reinterpret", "reinterpret_workspace"),
    "scale_histogram": ("analysis.recast.scale", "scale_histogram"),
    # HT reweighting
    "derive_reweighting": ("analysis.reweighting.derive", "derive"),
    "apply_reweighting": ("analysis.reweighting.derive", "apply_correction"),
    # machine learning
    "extract_features": ("analysis.ml.features", "extract_features"),
    "train_and_evaluate": ("analysis.ml.workflow", "train_and_evaluate"),
    "score_region": ("analysis.ml.workflow", "score_region"),
    # what a session shows: logging of this project and of the libraries underneath
    "set_logging": ("analysis.console", "set_logging"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first access."""
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
