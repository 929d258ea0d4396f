"""Shared fixtures: small synthetic datasets made once per test session (no downloads)."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from GAsynth import generate_dataset  # noqa: E402

SMALL = dict(cex_size=48, pg_size_range=(40, 64))  # tiny images keep the tests fast


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A Kaggle-layout synthetic dataset: 40 CEX and 40 PG images of 40-64 px."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, 40, 40, seed=3, progress=False, **SMALL)
    return root
