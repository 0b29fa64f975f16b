"""Shared fixtures: small datasets written to tmp folders, and the real sample data when present.
The builders behind them are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import CAMVID, make_dataset


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "tiny")


@pytest.fixture
def camvid() -> Path:
    if not (CAMVID / "train" / "images").is_dir():
        pytest.skip(f"sample data not found at {CAMVID}")
    return CAMVID
