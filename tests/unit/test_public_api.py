"""The curated public API (as pyhf pins its own): names, and that each resolves to a documented object."""

from __future__ import annotations

import inspect

import analysis
import analysis.execution

PUBLIC = [
    "AnalysisError", "ConfigError", "RetryPolicy", "RunResult", "UserError", "apply_reweighting",
    "derive_reweighting", "extract_features", "histogram_digest", "read_histograms", "reinterpret_histograms",
    "reinterpret_workspace", "run_demo", "run_fit", "run_ftest", "run_processor", "run_search", "run_ttbar",
    "RunOptions", "run_user_processor",
    "save_histograms", "scale_histogram", "score_region", "set_logging", "train_and_evaluate",
]


def test_public_names_pinned():
    """Adding or removing a public name is a deliberate change of this list."""
    assert sorted(analysis.__all__) == sorted(PUBLIC)


def test_public_names_resolve_with_docstrings():
    """Every public name imports and carries a docstring; functions have annotated signatures."""
    for name in analysis.__all__:
        obj = getattr(analysis, name)
        assert inspect.getdoc(obj), name
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            assert sig.return_annotation is not inspect.Signature.empty, name


def test_execution_exports_resolve():
    """The execution layer's names load lazily from their modules."""
    for name in analysis.execution.__all__:
        assert getattr(analysis.execution, name) is not None, name
