"""Loading a trained classifier (this project's .keras/.h5/.onnx, or the original project's files)
and labelling images with it: the Python API.

    from gacrystal import load_classifier
    classifier = load_classifier("weights/model.keras")       # or .h5, .onnx, GAweights.h5
    records = classifier.label(["a.png", "b.png"])            # or PIL images, or a NumPy batch
    p_pg = classifier.predict(batch)                          # (n, size, size, 3) RGB 0-255

No TensorFlow is imported for .onnx files: OpenVINO (where installed) or ONNX Runtime runs them,
which starts fast (`load_classifier(path, engine="onnxruntime")` picks one; gacrystal/onnx_io.py).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from gacrystal import calibration, ood
from gacrystal.errors import UserError
from gacrystal.files import CONFIG_JSON
from gacrystal.images import (CLASS_NAMES, DECISION_THRESHOLD, UNKNOWN, label_and_confidence,
                              preprocess, read_batches)
# which model file a weights setting means: one rule, in named_weights (imported from here too)
from gacrystal.named_weights import check_weights, model_file  # noqa: F401
from gacrystal.onnx_io import open_model, resolve_engine


def original_model_card(image_size: int) -> dict:
    """How the original project's files are used: input preprocessed outside, nearest resize.

    The original fed Keras 2's load_img images (nearest-neighbour resize) through
    keras.applications.resnet.preprocess_input ("caffe") before its model.
    """
    return {"image_size": image_size, "resize": "nearest", "class_names": list(CLASS_NAMES),
            "preprocessing": "caffe", "preprocessing_inside": False, "origin": "original project"}


def synthetic_only_note(card: dict) -> str | None:
    """The one line said before labelling or monitoring with a model trained on synthetic crops
    only (such as the demo model); None for any other model."""
    if card.get("trained_on") != "synthetic":
        return None
    return ("note: this model was trained on synthetic crops only (a demo); its labels of real "
            "crops or frames are not to be trusted. For real images use --weights georgia (the "
            "original's model, trained on the Kaggle crops) or a model you trained on real data")


def read_model_card(path: Path, image_size: int, preprocessing_inside: bool) -> dict:
    """The model card of a .keras/.h5 file: config.json beside it, else what the file shows."""
    if not preprocessing_inside:
        return original_model_card(image_size)
    card = {"image_size": image_size, "resize": "bilinear", "class_names": list(CLASS_NAMES),
            **config_beside(path).get("model", {})}
    card["preprocessing_inside"] = True
    return card


class Classifier:
    """A loaded model and the conventions it needs; labels paths, PIL images or NumPy batches.

    Attributes:
        card: image_size, resize, class_names, preprocessing, preprocessing_inside (and, for
            this project's models, what config.json says of them).
        engine: what runs the model and in which precision ("keras fp32", "onnxruntime fp32",
            "openvino int8", ...), as the scripts print it.
    """

    def __init__(self, path: Path, run_batch, card: dict, model=None, fixed_batch=None,
                 ood_stages=None, feature_sizes=None, engine="keras fp32"):
        self.path, self._run_batch, self.card, self.model = path, run_batch, card, model
        self.engine = engine
        # each stage's share of the OOD features (gacrystal.model.scoring_model), where known
        self.feature_sizes = feature_sizes or card.get("feature_sizes")
        self.fixed_batch = fixed_batch  # an ONNX input with a fixed batch dimension
        self.image_size, self.resize = card["image_size"], card["resize"]
        self.ood_stages = ood_stages  # gacrystal.ood statistics; None: rejection unavailable
        # A calibration fitted after the fact (GAcalibrate.py) wins over the one from training.
        self.calibration = calibration.load_sidecar(path) or card.get("calibration")

    def calibrated(self, p_pg):
        """Calibrated P(PG) from the network's raw P(PG) (unchanged without a calibration)."""
        if self.calibration is None:
            return np.asarray(p_pg, np.float64)
        return calibration.apply_temperature(p_pg, self.calibration["temperature"])

    def pad_short_batches_to(self, width: int):
        """Pads each later short batch to `width` images, as if the widest batch so far had
        `width` (.keras/.h5 models; an .onnx engine runs every batch as it is). The shape of a batch
        changes the last bits of its results, so a cluster worker sets the width one process
        labelling the same folder would have reached (gacrystal/labelling/shards.py)."""
        if hasattr(self._run_batch, "widest"):
            self._run_batch.widest = width

    @property
    def can_reject(self) -> bool:
        return self.ood_stages is not None

    def model_input(self, pixels) -> np.ndarray:
        """RGB 0-255 pixels as the model takes them: float32, preprocessed here only for models
        that do not preprocess inside themselves (the original project's)."""
        pixels = np.asarray(pixels, np.float32)
        if not self.card["preprocessing_inside"]:
            pixels = preprocess(pixels, self.card["preprocessing"])
        return pixels

    def predict_and_score(self, pixels: np.ndarray,
                          score: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """P(PG) and (where the model has its OOD statistics and `score` is on) the ood_score of
        a batch of RGB 0-255 images of shape (n, image_size, image_size, 3)."""
        p_pg, features = self.predict_with_features(pixels)
        return p_pg, self.ood_scores(features) if score else None

    def ood_scores(self, features: np.ndarray | None) -> np.ndarray | None:
        """The ood_score of each image's OOD features; None where the model cannot reject."""
        if not self.can_reject or features is None:
            return None
        return ood.scores(self.ood_stages, features)

    def pooled_features(self, features: np.ndarray | None) -> np.ndarray | None:
        """The backbone's globally pooled features (what the head reads; the embedding map's
        input), taken from the OOD features: their last part is the last stage's channel means,
        then standard deviations. None where the features or their layout are unknown."""
        if features is None or not self.feature_sizes:
            return None
        last = self.feature_sizes[-1]
        start = sum(self.feature_sizes[:-1])
        return features[:, start:start + last // 2]

    def predict_with_features(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The raw P(PG) and the out-of-distribution features (None when the model has no
        feature output) of a batch of RGB 0-255 images at image_size: what OOD fitting reads."""
        pixels = self.model_input(pixels)
        step = self.fixed_batch or max(len(pixels), 1)
        parts = [self._run_batch(pixels[i:i + step]) for i in range(0, len(pixels), step)]
        if not parts:
            return np.zeros(0, np.float32), None
        features = None if parts[0][1] is None else np.concatenate([f for _, f in parts])
        return np.concatenate([p for p, _ in parts]).reshape(-1), features

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """The network's raw P(PG) for a batch of RGB 0-255 images of shape (n, image_size,
        image_size, 3); `calibrated(...)` of it is what `label` reports. Another size is refused:
        a model that takes any size would answer differently than `label`, which resizes."""
        shape = np.shape(pixels)
        wanted = (self.image_size, self.image_size, 3)
        if len(shape) != 4 or tuple(shape[1:]) != wanted:
            raise UserError(f"predict takes a batch of shape (n, {self.image_size}, "
                            f"{self.image_size}, 3). Received: {tuple(shape)}; label() resizes "
                            "images of any size")
        return self.predict_and_score(pixels, score=False)[0]

    def record(self, name: str, p_pg_raw: float | None, error: str = "",
               threshold=DECISION_THRESHOLD, ood_score: float | None = None, reject=True) -> dict:
        """One result row: the label, calibrated P(PG), the confidence of that label, the raw
        P(PG) and the ood_score.

        The label is UNKNOWN when rejection is on and ood_score > 1 (the image is unlike the
        training images); P(PG) is still given, but no confidence: there is no class to be
        confident of, and the network's certainty on a foreign image means nothing."""
        if p_pg_raw is None:
            return {"file": name, "label": "ERROR", "p_pg": None, "confidence": None,
                    "p_pg_raw": None, "ood_score": None, "error": error}
        p_pg = float(self.calibrated(p_pg_raw))
        label, confidence = label_and_confidence(p_pg, threshold)
        if reject and ood_score is not None and ood_score > 1:
            label, confidence = UNKNOWN, None
        return {"file": name, "label": label, "p_pg": p_pg,
                "confidence": confidence, "p_pg_raw": float(p_pg_raw),
                "ood_score": None if ood_score is None else float(ood_score), "error": ""}

    def label(self, inputs, batch_size=32, threshold=DECISION_THRESHOLD, progress=False,
              reject=True, on_batch=None) -> list[dict]:
        """Labels file paths, PIL images, or a NumPy batch (n, h, w, 3) / one image (h, w, 3).

        Args:
            on_batch: called as on_batch(indices, pixels, features) with each batch's readable
                inputs at the model's size and their OOD features (None where the model gives
                none), so that other work on the same images (Grad-CAM, the embedding map)
                needs no second decode or pass.

        Returns:
            One record per input: {"file", "label", "p_pg", "confidence", "ood_score", "error"};
            label is CEX, PG, UNKNOWN (unlike the training images; only with reject and a model
            that has its OOD statistics) or ERROR (unreadable; the reason in "error").
        """
        if isinstance(inputs, np.ndarray):
            batch = inputs[None] if inputs.ndim == 3 else inputs
            inputs = list(batch)
        elif not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        names = [str(x) if isinstance(x, (str, Path)) else f"<image {i}>" for i, x in enumerate(inputs)]
        records = []
        for indices, pixels, errors in read_batches(inputs, batch_size, self.image_size,
                                                    self.resize, progress):
            readable = [i for i, p in zip(indices, pixels) if p is not None]
            good = np.stack([p for p in pixels if p is not None]) if readable else None
            p_pg, features = self.predict_with_features(good) if readable else ([], None)
            scores = self.ood_scores(features)
            results = iter(zip(p_pg, scores if scores is not None else [None] * len(readable)))
            for i, p, error in zip(indices, pixels, errors):
                p_one, score = (None, None) if p is None else next(results)
                records.append(self.record(names[i], p_one, error, threshold, score, reject))
            if on_batch is not None and readable:
                on_batch(readable, good, features)
        return records


def code_layers_in_h5(path: Path) -> list[str]:
    """Names of the Lambda layers in a legacy .h5 model: each holds Python code that loading runs."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
    except OSError:
        return []  # not HDF5 at all; load_model says so
    if config is None:
        return []
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(node.get("config", {}).get("name", "?"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(json.loads(config if isinstance(config, str) else config.decode()))
    return found


def load_keras_model(path: Path, trust_model: bool = False):
    """keras.models.load_model without running code from the file unless the user trusts it.

    .keras files load in Keras's safe mode (a Lambda layer's code is refused). A legacy .h5 file
    with Lambda layers is refused here, before loading, unless trust_model is set.
    """
    import zipfile
    import keras
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        # Keras would say "File not found" of a file that is there
        raise UserError(f"could not load {path} as a Keras model: not a .keras archive (a zip "
                        "file); it is damaged, or another kind of file renamed")
    if path.suffix.lower() in (".h5", ".hdf5") and not trust_model:
        code = code_layers_in_h5(path)
        if code:
            raise UserError(f"{path} holds Lambda layers ({', '.join(code)}) whose Python code "
                            "would run on loading; load it only if you trust its source, with "
                            "--trust-model")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=not trust_model)
    except Exception as error:
        text = str(error).splitlines()[0][:200] if str(error) else ""
        if "safe_mode" in str(error):
            text = ("it holds a Lambda layer whose Python code would run on loading; load it only "
                    "if you trust its source, with --trust-model")
        if truncated := re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(error)):
            have, whole = map(int, truncated.groups())
            raise UserError(f"{path} is cut short ({have:,} of its {whole:,} bytes): an "
                            "interrupted download or copy; copy it again") from None
        raise UserError(f"could not load {path} as a Keras model ({type(error).__name__}: "
                        f"{text})") from None


def load_keras_classifier(path: Path, trust_model: bool = False,
                          features: bool = False) -> Classifier:
    """A .keras or .h5 file: this project's (preprocessing inside) or the original's (outside).
    features: also compute the OOD features when there are no statistics yet (to fit them)."""
    model = load_keras_model(path, trust_model)
    if len(model.inputs) != 1 or model.input_shape[-1] != 3 or model.output_shape[-1] != 1:
        raise UserError(f"{path} is not a CEX/PG classifier: expected input (batch, size, size, 3) "
                        f"and output (batch, 1). Received: input {model.input_shape}, "
                        f"output {model.output_shape}")
    inside = any(layer.name.startswith("preprocess_") for layer in model.layers[:3])
    card = read_model_card(path, model.input_shape[1] or 224, inside)
    if model.input_shape[1] not in (None, card["image_size"]):
        raise UserError(f"{path} takes {model.input_shape[1]} px images but the config.json beside "
                        f"it says image_size={card['image_size']}; keep each model with its own "
                        "config.json")
    stages = ood_statistics(path, card)
    if stages is not None or features:  # one pass gives P(PG) and the features OOD reads
        from gacrystal.model import scoring_model
        scorer, sizes = scoring_model(model)
        return Classifier(path, one_batch_shape(lambda x: scorer.predict_on_batch(x)),
                          card, model=model, ood_stages=stages, feature_sizes=sizes)
    return Classifier(path, one_batch_shape(lambda x: (model.predict_on_batch(x), None)), card,
                      model=model)


def one_batch_shape(run):
    """Keras traces its predict function again for each new batch shape (about 2 s for a
    ResNet-101): a short last batch is padded to the widest batch seen so far instead
    (`run_padded.widest`, which `Classifier.pad_short_batches_to` sets)."""
    def run_padded(x):
        n = len(x)
        run_padded.widest = max(run_padded.widest, n)
        if n < run_padded.widest:
            x = np.concatenate([x, np.zeros((run_padded.widest - n, *x.shape[1:]), x.dtype)])
        return tuple(None if y is None else np.asarray(y)[:n] for y in run(x))
    run_padded.widest = 0
    return run_padded


def ood_statistics(path: Path, card: dict) -> list[dict] | None:
    """The OOD statistics of a model, or None: MODEL_STEM.ood.npz where they were fitted after the
    fact (GAcalibrate.py, any model), else those training saved beside a model of this project
    (ood.npz, or ood.int8.npz for an int8 copy)."""
    fitted_later = ood.load(ood.sidecar_path(path))
    if fitted_later is not None or not card["preprocessing_inside"]:
        return fitted_later
    return ood.load(path.parent / ood.file_for(card))


def load_onnx_classifier(path: Path, engine: str = "auto") -> Classifier:
    """An .onnx file through OpenVINO or ONNX Runtime (no TensorFlow; gacrystal.onnx_io's
    `engine`): ours carries its card as metadata."""
    engine = resolve_engine(engine)  # a wrong setting is not a damaged file
    try:
        model = open_model(path, engine)
    except Exception as error:
        raise UserError(f"could not load {path} as an ONNX model ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:200]})") from None
    shape = model.input_shape
    if len(shape) != 4 or shape[-1] != 3:
        raise UserError(f"{path} is not a CEX/PG classifier: expected an NHWC input "
                        f"(batch, size, size, 3). Received: {list(shape)}")
    if model.card is not None:
        card = dict(model.card, preprocessing_inside=True)
    else:  # the original project's tf2onnx export: preprocessed input
        card = original_model_card(shape[1] or 224)
    # Our files' second output holds the features the OOD check reads; the original's has none.
    has_features = model.outputs > 1
    stages = ood_statistics(path, card) if has_features else None

    def run(x):
        outputs = model.run(x)
        return outputs[0], outputs[1] if has_features else None
    return Classifier(path, run, card, fixed_batch=shape[0], ood_stages=stages,
                      engine=model.engine)


def config_beside(model_path: str | Path) -> dict:
    """The config.json GAmain.py wrote beside a model (run folders and weights/ have one), or {}."""
    config = Path(model_path).parent / CONFIG_JSON
    return json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}


def training_data_of(model_path: str | Path) -> str:
    """The split a model was trained on, as the config.json beside it names it (GAmain.py's
    --data), or "": the default for the scripts that need a model's own crops."""
    return str(config_beside(model_path).get("settings", {}).get("data", ""))


def load_classifier(path: str | Path, trust_model: bool = False,
                    features: bool = False, engine: str = "auto") -> Classifier:
    """Loads a .keras, .h5 or .onnx classifier, this project's or the original project's, or
    published weights by name ("georgia": the original's release, downloaded once).

    The returned object's `label(...)` takes file paths, PIL images or a NumPy batch of RGB 0-255
    images and returns records with the label, P(PG) and confidence; `predict(batch)` returns
    P(PG) for images already at `image_size`. trust_model allows a legacy .h5 file's Lambda
    layers, whose Python code runs on loading (never needed for this project's files). features:
    compute the OOD features even where no statistics exist yet (GAcalibrate fits them).
    engine: what runs an .onnx file (gacrystal.onnx_io.ENGINES): "auto" (OpenVINO where
    installed, else ONNX Runtime), "onnxruntime", "openvino" or "openvino-bf16"; the returned
    object's `engine` says which ran it, in which precision.
    """
    path = model_file(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return load_onnx_classifier(path, engine)
    if suffix in (".keras", ".h5", ".hdf5"):
        return load_keras_classifier(path, trust_model, features)
    raise UserError(f"unknown model format {suffix!r}. Expected .keras, .h5 or .onnx. "
                    f"Received: weights={path}")
