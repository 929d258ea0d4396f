"""Training under tf.distribute (two logical CPU devices stand in for two GPUs), in mixed
precision and with XLA; the saved files stay float32 for labelling and ONNX Runtime."""
import json
import subprocess
import sys

import numpy as np
import pytest

import GAmain
from conftest import ROOT, TINY
from gacrystal import load_classifier
from gacrystal.images import read_rgb

pytestmark = pytest.mark.training

# Splits the CPU into two logical devices before TensorFlow starts, then runs GAmain.py.
TWO_CPUS = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import GAmain
sys.exit(GAmain.main(sys.argv[1:]) or 0)
"""


def first_epoch(run_dir, column="loss"):
    header, first = (run_dir / "history.csv").read_text().splitlines()[:2]
    return float(first.split(",")[header.split(",").index(column)])


def test_mirrored_over_two_devices_matches_one_device_at_the_same_global_batch(split_dir,
                                                                               tmp_path):
    args = ["--data", str(split_dir), "--epochs", "1", "--no-export_onnx", *TINY,
            "--no-augment", "--dropout1", "0", "--dropout2", "0"]
    printed = {}
    for name, extra in (("mirrored", ["--distribute", "mirrored", "--devices", "/cpu:0,/cpu:1"]),
                        ("one", ["--distribute", "none"])):
        result = subprocess.run([sys.executable, "-c", TWO_CPUS, *args, "--runs",
                                 str(tmp_path / name), *extra], cwd=ROOT, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        printed[name] = result.stdout
    assert "training on 2 device(s)" in printed["mirrored"]
    assert "training on 1 device(s)" in printed["one"]
    mirrored, one = (next((tmp_path / name).iterdir()) for name in ("mirrored", "one"))
    config = json.loads((mirrored / "config.json").read_text())
    assert config["settings"]["distribute"] == "mirrored"
    assert config["training"]["status"] == "finished"
    # BatchNorm statistics are synchronised across the replicas, and dropout is off here (each
    # replica would draw its own masks); what is left is the order of floating-point sums.
    print(f"first-epoch loss: mirrored {first_epoch(mirrored):.6f}, one device {first_epoch(one):.6f}")
    assert first_epoch(mirrored) == pytest.approx(first_epoch(one), rel=0.02)


def test_mixed_precision_trains_and_saves_float32_files_that_agree(split_dir, tmp_path):
    GAmain.main(["--data", str(split_dir), "--runs", str(tmp_path), "--epochs", "1", *TINY,
                 "--precision", "mixed_bfloat16"])
    run_dir = next(tmp_path.iterdir())
    import keras
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    saved = keras.models.load_model(run_dir / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    images = np.stack([read_rgb(p, 32) for p in sorted((split_dir / "test").rglob("*.png"))])
    p = {name: load_classifier(run_dir / name).predict(images)
         for name in ("model.keras", "model.h5", "model.onnx")}
    # The same float32 weights in three files: P(PG) agrees to 1e-4.
    np.testing.assert_allclose(p["model.h5"], p["model.keras"], atol=1e-4)
    np.testing.assert_allclose(p["model.onnx"], p["model.keras"], atol=1e-4)
    assert json.loads((run_dir / "config.json").read_text())["settings"]["precision"] == \
        "mixed_bfloat16"


def test_unknown_system_settings_are_one_line_errors():
    from gacrystal import UserError
    for flag, value in (("--distribute", "cluster"), ("--precision", "int8"),
                        ("--jit_compile", "yes"), ("--lr_schedule", "linear")):
        with pytest.raises(UserError, match=f"Received: {flag[2:]}={value}"):
            GAmain.main([flag, value])


def test_the_cosine_schedule_ends_the_run_at_a_learning_rate_near_zero():
    from gacrystal.training.fit import build_and_compile
    _, trainer = build_and_compile("ResNet50", None, 32, 1.0, (0.4, 0.3), 0.9, lr=0.01,
                                   momentum=0.9, lr_schedule="cosine", total_steps=10)
    optimizer = trainer.optimizer
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    optimizer.iterations.assign(10)  # the last step of the run
    assert float(optimizer.learning_rate) < 1e-6


def test_a_run_stopped_by_an_error_leaves_keras_in_float32(split_dir, tmp_path, monkeypatch):
    import keras
    from gacrystal import UserError
    from gacrystal.training import fit

    def stopped(*args, **kwargs):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # while it ran
        raise UserError("stopped")
    monkeypatch.setattr(fit, "train_or_restore", stopped)
    with pytest.raises(UserError, match="stopped"):
        GAmain.main(["--data", str(split_dir), "--runs", str(tmp_path), "--epochs", "1", *TINY,
                     "--precision", "mixed_bfloat16"])
    assert keras.mixed_precision.global_policy().name == "float32"  # later models: float32


def test_auto_precision_is_bf16_only_with_bf16_arithmetic_and_float16_only_with_a_gpu(monkeypatch):
    import tensorflow as tf
    from gacrystal.training import distribution
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(distribution, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_vnni"})
    assert distribution.chosen_precision("auto")[0] == "float32"
    monkeypatch.setattr(distribution, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    policy, why = distribution.chosen_precision("auto")
    assert policy == "mixed_bfloat16" and "avx512_bf16" in why
    monkeypatch.setattr(distribution, "cpu_flags", lambda: {"avx512_bf16", "amx_bf16"})
    policy, why = distribution.chosen_precision("auto")
    assert policy == "mixed_bfloat16" and "amx_bf16" in why
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert distribution.chosen_precision("auto")[0] == "mixed_float16"
    assert distribution.chosen_precision("float32") == ("float32", "as set")
