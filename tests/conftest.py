"""Shared fixtures: small synthetic datasets made once per test session (no downloads)."""
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# A fresh Keras cache for each session, set before Keras is imported (it reads KERAS_HOME once):
# ImageNet weights are fetched and converted for real (tests/test_imagenet.py), and nothing a
# user keeps in ~/.keras changes what the tests see.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="gacrystal-tests-keras-")

from gacrystal.synthetic.crops import generate_dataset  # noqa: E402

SMALL = dict(cex_size=48, pg_size_range=(40, 64))  # tiny images keep the tests fast


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A Kaggle-layout synthetic dataset: 40 CEX and 40 PG images of 40-64 px."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, 40, 40, seed=3, progress=False, **SMALL)
    return root


# ResNet-50, not the default ResNet-101: half the layers to build, trace and export, the same
# code paths (test_model.py builds the ResNet-101 itself). float32, not auto: the tests that
# compare two runs (devices, workers, a resume) must compare the same arithmetic on every CI
# machine, whether its CPU computes in bf16 or not; bf16 training has tests of its own.
TINY = ["--weights", "none", "--image_size", "32", "--batch_size", "16", "--lr", "0.01",
        "--backbone", "ResNet50", "--precision", "float32"]


@pytest.fixture(scope="session")
def split_dir(synthetic_root, tmp_path_factory) -> Path:
    """The synthetic dataset split 70/25/5: 28/10/2 images per class."""
    import GAsplit
    dest = tmp_path_factory.mktemp("split") / "split"
    GAsplit.main(["--source", str(synthetic_root), "--dest", str(dest)])
    return dest


@pytest.fixture(scope="session")
def runs(split_dir, tmp_path_factory):
    """Two tiny ResNet-50 runs with the same seed, made once for the whole test session.

    Run A: 2 epochs with every deliverable (ONNX too), counting the images each predict() call
    sees. Run B: 1 epoch without ONNX, to compare the first epoch with A's.
    """
    import keras
    import GAmain
    runs_dir = tmp_path_factory.mktemp("runs")
    predicted = []  # samples per predict() call, in order
    original_predict = keras.Model.predict

    def counting_predict(self, x, *args, **kwargs):
        out = original_predict(self, x, *args, **kwargs)
        predicted.append(len(out[0]) if isinstance(out, (list, tuple)) else len(out))
        return out
    keras.Model.predict = counting_predict
    try:
        GAmain.main(["--data", str(split_dir), "--runs", str(runs_dir), "--epochs", "2", *TINY])
    finally:
        keras.Model.predict = original_predict
    GAmain.main(["--data", str(split_dir), "--runs", str(runs_dir), "--epochs", "1",
                 "--no-export_onnx", *TINY])
    run_a, run_b = sorted(runs_dir.iterdir(), key=lambda p: p.stat().st_mtime)
    return {"a": run_a, "b": run_b, "predicted": predicted}


SLOW_FIXTURES = {"runs", "trust_run"}  # each trains tiny models once per session


def pytest_collection_modifyitems(items):
    """Marks every test that trains (itself, or through a shared fixture) as slow, so that
    `pytest -m "not slow"` gives developers a quick subset; CI runs everything."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or "training" in item.keywords:
            item.add_marker(pytest.mark.slow)
