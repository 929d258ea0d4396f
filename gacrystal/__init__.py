"""gacrystal: the library behind the GA scripts — a CEX/PG crystal image classifier for
crystallization monitoring.

    from gacrystal import load_classifier
    classifier = load_classifier("weights/model.keras")      # or .h5, .onnx, GAweights.h5
    records = classifier.label(["a.png", "b.png"])           # paths, PIL images or a NumPy batch

Class 0 is CEX (cephalexin, the product) and class 1 is PG (phenylglycine, the impurity); every
model's single output is P(PG). Importing this package does not import TensorFlow; it sets
TF_CPP_MIN_LOG_LEVEL=2 and TF_ENABLE_ONEDNN_OPTS=1 for when TensorFlow is imported, unless they
are set already.

The package by subject: a folder each for synthetic data (synthetic/), the dataset (dataset/),
training (training/), labelling (labelling/) and monitoring (monitoring/), each named in its
__init__.py; and the shared core, flat here, that every subject uses:
- cli (settings blocks and flags), errors, files (atomic writes, locks), images (class names,
  reading, preprocessing);
- model, classifier (loading and labelling), named_weights (which model file a weights setting
  means; published weights by name), imagenet (ImageNet weights where Keras's download fails);
- ood (rejecting foreign images), calibration (temperature scaling), onnx_io (ONNX sessions and
  export), quantize (int8), pictures (Grad-CAM, plots, the pieces of the HTML pages);
- crops_or_frames (which input each script takes), corrections (the verdicts and placing
  corrected images into cex/ and pg/, for labelling and monitoring), cluster (a Dask cluster
  for labelling and monitoring: connecting, the workers' model, the tasks).

The folders' rules (tests/test_imports.py): the core never imports a subject; synthetic/ and
dataset/ never import TensorFlow or training/; monitoring/ and labelling/ never import training/.
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
