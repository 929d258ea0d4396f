"""GAquantize: an int8 ONNX copy beside the fp32 one, measured against it."""
import shutil
from pathlib import Path

import numpy as np

from gacrystal.cli import run_main
from gacrystal import load_classifier
import GAquantize
from gacrystal.quantize import quantize


def test_quantize_writes_an_int8_model_that_labels_and_reports_agreement(runs, split_dir, tmp_path,
                                                                         capsys):
    fp32 = tmp_path / "model.onnx"
    shutil.copyfile(runs["a"] / "model.onnx", fp32)
    shutil.copyfile(runs["a"] / "ood.npz", tmp_path / "ood.npz")
    assert run_main(GAquantize.main, ["--weights", str(fp32)]) == 2  # no config.json: no split
    assert "pass --data SPLIT" in capsys.readouterr().err
    shutil.copyfile(runs["a"] / "config.json", tmp_path / "config.json")  # it names split_dir
    # the run folder stands for its model.onnx (gacrystal.classifier.folder_model)
    assert run_main(GAquantize.main, ["--weights", str(tmp_path),
                                      "--calibration_images", "8"]) == 0
    out = capsys.readouterr().out
    assert f"data: {split_dir} (the split model.onnx was trained on" in out
    assert "labels agreeing with fp32 on 25 val+test images" in out and "images/s" in out
    assert "UNKNOWN decisions agreeing" in out
    int8 = tmp_path / "model.int8.onnx"
    assert int8.stat().st_size < fp32.stat().st_size / 2
    classifier = load_classifier(int8)
    assert classifier.card["quantized"].startswith("int8")
    assert classifier.can_reject and (tmp_path / "ood.int8.npz").exists()
    # It labels as the fp32 model does, nearly, and scores every image for the OOD check.
    files = [str(p) for p in sorted((split_dir / "test").rglob("*.png"))]
    int8_records, fp32_records = classifier.label(files), load_classifier(fp32).label(files)
    # (measured on an AVX-512 EPYC: at most 0.003 apart on the split's 25 val and test images)
    np.testing.assert_allclose([r["p_pg"] for r in int8_records],
                               [r["p_pg"] for r in fp32_records], atol=0.02)
    assert all(r["ood_score"] is not None and r["ood_score"] >= 0 for r in int8_records)
    assert run_main(GAquantize.main, ["--weights", str(fp32), "--data", str(split_dir)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_only_the_prediction_is_quantized_the_feature_statistics_stay_float(runs, tmp_path):
    import onnx
    fp32 = runs["a"] / "model.onnx"
    calibration = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    quantize(fp32, calibration, tmp_path / "model.int8.onnx", image_size=32, resize="bilinear")
    model = onnx.load(str(tmp_path / "model.int8.onnx"))
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) > 10
    producer = {o: n for n in model.graph.node for o in n.output}
    features = producer[model.graph.output[1].name]  # the concatenation of means and deviations
    assert features.op_type == "Concat"
    quantized = [i for i in features.input if producer[i].op_type == "DequantizeLinear"]
    # At most one: the last stage's mean, which is also the head's pooling (the same node)
    assert len(quantized) <= 1 and len(features.input) >= 8
    # The head stays float (its dense layers quantized squeezed a demo model's P(PG) to 0.5)
    head = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul", "Sigmoid")]
    assert head and not [n.name for n in head for i in n.input
                         if i in producer and producer[i].op_type == "DequantizeLinear"]


def test_a_missing_or_keras_model_is_a_one_line_error_that_says_what_to_do(tmp_path, capsys):
    assert run_main(GAquantize.main, ["--weights", str(tmp_path / "model.onnx")]) == 2
    err = capsys.readouterr().err
    assert "no model file at weights=" in err and "GAmain.py" in err and "Traceback" not in err
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"not checked: the suffix is refused first")
    assert run_main(GAquantize.main, ["--weights", str(keras_file)]) == 2
    assert "must be an .onnx file" in capsys.readouterr().err


def test_a_run_folder_stands_for_its_model_onnx(tmp_path, capsys):
    """--weights runs/RUN: the folder's model.onnx (gacrystal.classifier.model_file, the rule every
    script reads a folder by), not "no model file"."""
    from gacrystal.classifier import model_file
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"")
    assert run_main(GAquantize.main, ["--weights", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"weights={run} is a folder with no model.onnx (it holds model.keras)" in err
    (run / "model.onnx").write_bytes(b"not read: the split is looked for first")
    assert run_main(GAquantize.main, ["--weights", str(run)]) == 2
    assert f"no config.json beside {run / 'model.onnx'} names the split" in capsys.readouterr().err
    assert model_file(run, kind=".onnx") == run / "model.onnx"


def test_an_int8_model_that_changes_labels_is_not_offered():
    fp32, out = Path("run/model.onnx"), Path("run/model.int8.onnx")
    offered = GAquantize.what_next(0.996, fp32, out)
    assert offered.startswith(f"next: python GAinfer.py --weights {out}")
    warning = GAquantize.what_next(0.755, fp32, out)
    assert warning.startswith("warning: the int8 model changes 24.5% of the labels")
    assert str(fp32) in warning and str(out) not in warning
