"""Shared test fixtures: the ../shared directory (read in place, never copied) and temp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path to ../shared; tests needing it skip with a clear reason where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found next to the repository ({SHARED}); real-data tests need it")
    return SHARED
