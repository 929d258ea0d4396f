"""Peak memory and time of the ONNX export: gacrystal.onnx_io against Keras's model.export (run by hand).

    python bench/export.py                # ResNet-101 scoring model, 224 px

Each method runs in its own fresh process on the same scratch model: the peak resident memory
before the export (the model built) and after it, from the operating system.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import machine, peak_rss_mb, run_child


def child(args) -> dict:
    import warnings
    import numpy as np
    from gacrystal.model import build_classifier, scoring_model
    from gacrystal import onnx_io
    warnings.simplefilter("ignore")
    model = build_classifier(args.backbone, None, args.image_size)
    model(np.zeros((1, args.image_size, args.image_size, 3), np.float32))
    scorer, _ = scoring_model(model)
    scorer(np.zeros((1, args.image_size, args.image_size, 3), np.float32))
    built = peak_rss_mb()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        if args.child == "keras":
            scorer.export(str(Path(work) / "model.onnx"), format="onnx", verbose=False)
        else:
            onnx_io.export_onnx(scorer, Path(work) / "model.onnx")
        size_mb = (Path(work) / "model.onnx").stat().st_size / 2**20
    return {"seconds": time.perf_counter() - started, "built_mb": built,
            "peak_rss_mb": peak_rss_mb(), "file_mb": size_mb}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--backbone", default="ResNet101")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    print(f"machine: {machine()}")
    print(f"{args.backbone} scoring model (P(PG) and the OOD features), {args.image_size} px")
    for method in ("onnx_io", "keras"):
        r = run_child(Path(__file__), [method, "--image_size", str(args.image_size),
                                       "--backbone", args.backbone])
        print(f"  {method:<7} {r['seconds']:5.1f} s   peak RSS {r['peak_rss_mb'] / 1024:5.2f} GB "
              f"(model built: {r['built_mb'] / 1024:.2f} GB)   file {r['file_mb']:.0f} MB")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
