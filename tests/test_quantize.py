"""GAquantize: an int8 ONNX copy beside the fp32 one, measured against it."""
import shutil

import pytest

import GAcli
import GAinfer
import GAquantize


def test_quantize_writes_an_int8_model_that_labels_and_reports_agreement(runs, split_dir, tmp_path,
                                                                         capsys):
    fp32 = tmp_path / "model.onnx"
    shutil.copyfile(runs["a"] / "model.onnx", fp32)
    shutil.copyfile(runs["a"] / "ood.npz", tmp_path / "ood.npz")
    assert GAcli.run_main(GAquantize.main, ["--weights", str(fp32), "--data", str(split_dir),
                                            "--calibration_images", "8"]) == 0
    out = capsys.readouterr().out
    assert "labels agreeing with fp32 on 25 val+test images" in out and "images/s" in out
    int8 = tmp_path / "model.int8.onnx"
    assert int8.stat().st_size < fp32.stat().st_size / 2
    classifier = GAinfer.load_classifier(int8)
    assert classifier.card["quantized"].startswith("int8") and not classifier.can_reject
    record = classifier.label([str(next((split_dir / "test" / "PG").iterdir()))])[0]
    assert record["label"] in ("CEX", "PG") and 0 <= record["p_pg"] <= 1
    assert GAcli.run_main(GAquantize.main, ["--weights", str(fp32), "--data", str(split_dir)]) == 2
    assert "--overwrite" in capsys.readouterr().err
