"""End-to-end workflow tests: every test here is marked ``slow`` (``-m "not slow"`` runs the fast tiers only)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected under tests/workflows as slow."""
    for item in items:
        if "tests/workflows/" in item.nodeid.replace("\\", "/") or item.nodeid.startswith("workflows/"):
            item.add_marker(pytest.mark.slow)
