"""gacrystal: the library behind the GA scripts — a CEX/PG crystal image classifier for
crystallization monitoring.

    from gacrystal import load_classifier
    classifier = load_classifier("weights/model.keras")      # or .h5, .onnx, GAweights.h5
    records = classifier.label(["a.png", "b.png"])           # paths, PIL images or a NumPy batch

Class 0 is CEX (cephalexin, the product) and class 1 is PG (phenylglycine, the impurity); every
model's single output is P(PG). Importing this package does not import TensorFlow; it sets
TF_CPP_MIN_LOG_LEVEL=2 and TF_ENABLE_ONEDNN_OPTS=1 for when TensorFlow is imported, unless they
are set already.

Modules, by what they are about:
- shared: cli (settings blocks and flags), errors, files (atomic writes, locks), images (class
  names, reading, preprocessing), model, classifier (loading and labelling), ood (rejecting
  foreign images), calibration (temperature scaling), onnx_io (ONNX sessions and export),
  quantize (int8), named_weights (published weights by name), imagenet (ImageNet weights where
  Keras's download fails), explain (Grad-CAM), report (plots, report.html), crops_or_frames
  (which input each script takes);
- synthetic data: synthetic (crops), with drawing, frames (whole probe frames), mosaic, realism;
- the dataset: copies (finding copies of one crop), splitting, split_folder (reading a split),
  demo (the demo's data);
- training: data (tf.data pipeline), training, callbacks, keras_state (the Keras internals that
  exact resume needs), deliverables (what a finished run writes), runs (the run folder's books),
  distribution (tf.distribute, mixed precision, XLA), multiworker;
- labelling: labelling (a folder's table and embedding map), review (the review page),
  placement (corrected images into cex/ and pg/, for both scripts), cluster (labelling on Dask);
- monitoring: candidates (where to look in a whole frame) and the subpackage monitoring
  (watching a crystallization, GAmonitor.py).
"""
import os

# TensorFlow reads these once, when it is first imported; a value you set yourself wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its start-up chatter is not for users
# oneDNN's kernels: TensorFlow leaves them off on some x86 CPUs (AMD, AVX2 only), where they made
# a ResNet-50 training step 2x faster; where they are on by default this changes nothing
# (bench/RESULTS.md).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from gacrystal.classifier import Classifier, load_classifier  # noqa: E402
from gacrystal.errors import UserError  # noqa: E402
from gacrystal.images import (CLASS_NAMES, DECISION_THRESHOLD, UNKNOWN, preprocess,  # noqa: E402
                              predicted_labels, read_rgb)

__all__ = ["CLASS_NAMES", "Classifier", "DECISION_THRESHOLD", "UNKNOWN", "UserError",
           "load_classifier", "predicted_labels", "preprocess", "read_rgb"]
__version__ = "2.0.0"
