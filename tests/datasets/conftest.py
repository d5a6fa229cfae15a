"""Shared paths and small tables for the data set tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# ../shared/data relative to the repository root (data/README.md); read-only reference data.
SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"
HIV_CSV = SHARED_DATA / "moleculenet-hiv" / "HIV.csv"
SYNTHEA_SAMPLE = SHARED_DATA / "synthea-covid-sample"


@pytest.fixture(scope="session")
def hiv_csv() -> Path:
    if not HIV_CSV.exists():
        pytest.skip(f"{HIV_CSV} is not available")
    return HIV_CSV


@pytest.fixture(scope="session")
def synthea_sample() -> Path:
    if not (SYNTHEA_SAMPLE / "patients.csv").exists():
        pytest.skip(f"{SYNTHEA_SAMPLE} is not available")
    return SYNTHEA_SAMPLE


@pytest.fixture
def tabular() -> pd.DataFrame:
    """200 rows: two numeric columns, one categorical, a binary label correlated with x."""
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "x": x,
            "z": rng.normal(5.0, 2.0, size=n),
            "colour": rng.choice(["red", "green", "blue"], size=n),
            "y": (x + 0.5 * rng.normal(size=n) > 0).astype(int),
        }
    )
