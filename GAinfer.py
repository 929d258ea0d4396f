"""Labels every image in a folder as CEX or PG, with P(PG) and the confidence of the label.

    python GAinfer.py --weights runs/RUN/model.keras --images FOLDER --out labels.csv
    python GAinfer.py --weights weights/model.onnx --images FOLDER     # ONNX Runtime, no TensorFlow
    python GAinfer.py --weights weights/GAweights.h5 --images FOLDER   # the original project's file
    python GAinfer.py --images FOLDER --map map/                        # + embedding map (k-means)
    python GAinfer.py --images FOLDER --explain gradcam/                # + Grad-CAM overlays

Output per image: file, label (CEX or PG; UNKNOWN when the image is unlike the training images;
ERROR when the file cannot be read), P(PG), confidence = the probability of the class given (P(PG)
for PG, 1 - P(PG) for CEX), and ood_score (distance from the training images; above 1 is UNKNOWN,
see GAood.py; --no-reject turns rejection off). The exit status is 1 when any file could not be
read, else 0.

In your own code:

    from GAinfer import load_classifier
    classifier = load_classifier("weights/model.keras")
    records = classifier.label(["a.png", "b.png"])   # or PIL images, or a NumPy batch
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for users

import contextlib  # noqa: E402
import json  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import GAood  # noqa: E402

from GAcli import UserError, parse_settings, run_main  # noqa: E402
from GAfiles import exclusive_lock, write_csv  # noqa: E402
from GAonnx import CARD_KEY  # noqa: E402
from GAimages import (CLASS_NAMES, ImageError, list_images, preprocess, read_rgb,  # noqa: E402
                      why_unreadable)

# --- settings (edit here, or override on the command line with the same names) ---
weights = "weights/model.keras"  # model file: .keras, .h5 or .onnx (this project's or the original's)
images = "images/unlabelled"  # folder of images to label (PNG, JPEG, BMP, TIFF)
recursive = False  # also label the images in subfolders
out = ""  # CSV file to write the labels to (empty: print the table only)
batch_size = 16  # images per forward pass (16: as fast as 32 on a CPU, less memory)
threshold = 0.5  # P(PG) at or above this is labelled PG
map = ""  # folder to write the embedding map into (PNG and CSV); empty: no map
clusters = 4  # k of the map's k-means
overwrite = False  # replace an existing --out CSV or map files
reject = True  # label images unlike the training images UNKNOWN (models with an ood.npz beside them)
explain = ""  # folder to write a Grad-CAM overlay per image into (.keras/.h5 models); empty: none
trust_model = False  # allow a legacy .h5 model's Lambda layers (runs code from the file: trusted files only)
# --- end of settings

COLUMNS = ["file", "label", "p_pg", "confidence", "ood_score", "error"]
UNKNOWN = "UNKNOWN"  # the label of an image unlike the training images
GET_WEIGHTS_HELP = (
    "train a model with `python GAmain.py` (or `python GAmain.py --demo`, which puts a small one "
    "into weights/), or put the original project's released GAweights.h5 or GAweights.onnx into "
    "weights/ and pass --weights weights/GAweights.h5")


def original_model_card(image_size: int) -> dict:
    """How the original project's files are used: input preprocessed outside, nearest resize.

    The original fed Keras 2's load_img images (nearest-neighbour resize) through
    keras.applications.resnet.preprocess_input ("caffe") before its model.
    """
    return {"image_size": image_size, "resize": "nearest", "class_names": list(CLASS_NAMES),
            "preprocessing": "caffe", "preprocessing_inside": False, "origin": "original project"}


def read_model_card(path: Path, image_size: int, preprocessing_inside: bool) -> dict:
    """The model card of a .keras/.h5 file: config.json beside it, else what the file shows."""
    if not preprocessing_inside:
        return original_model_card(image_size)
    config = path.parent / "config.json"
    card = {"image_size": image_size, "resize": "bilinear", "class_names": list(CLASS_NAMES)}
    if config.is_file():
        card.update(json.loads(config.read_text()).get("model", {}))
    card["preprocessing_inside"] = True
    return card


class Classifier:
    """A loaded model and the conventions it needs; labels paths, PIL images or NumPy batches.

    Attributes:
        card: image_size, resize, class_names, preprocessing, preprocessing_inside (and, for
            this project's models, what config.json says of them).
    """

    def __init__(self, path: Path, run_batch, card: dict, model=None, fixed_batch=None,
                 ood_stages=None):
        self.path, self._run_batch, self.card, self.model = path, run_batch, card, model
        self.fixed_batch = fixed_batch  # an ONNX input with a fixed batch dimension
        self.image_size, self.resize = card["image_size"], card["resize"]
        self.ood_stages = ood_stages  # GAood statistics; None: rejection unavailable

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
        pixels = self.model_input(pixels)
        step = self.fixed_batch or max(len(pixels), 1)
        parts = [self._run_batch(pixels[i:i + step]) for i in range(0, len(pixels), step)]
        if not parts:
            return np.zeros(0, np.float32), None
        p_pg = np.concatenate([p for p, _ in parts]).reshape(-1)
        if not score or not self.can_reject or parts[0][1] is None:
            return p_pg, None
        return p_pg, GAood.scores(self.ood_stages, np.concatenate([f for _, f in parts]))

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """P(PG) for a batch of RGB 0-255 images of shape (n, image_size, image_size, 3)."""
        return self.predict_and_score(pixels, score=False)[0]

    def record(self, name: str, p_pg: float | None, error: str = "", threshold=0.5,
               ood_score: float | None = None, reject=True) -> dict:
        """One result row: the label, P(PG), the confidence of that label and the ood_score.

        The label is UNKNOWN when rejection is on and ood_score > 1 (the image is unlike the
        training images); P(PG) is still given."""
        if p_pg is None:
            return {"file": name, "label": "ERROR", "p_pg": None, "confidence": None,
                    "ood_score": None, "error": error}
        is_pg = p_pg >= threshold
        label = CLASS_NAMES[int(is_pg)]
        if reject and ood_score is not None and ood_score > 1:
            label = UNKNOWN
        return {"file": name, "label": label, "p_pg": float(p_pg),
                "confidence": float(p_pg if is_pg else 1.0 - p_pg),
                "ood_score": None if ood_score is None else float(ood_score), "error": ""}

    def label(self, inputs, batch_size=32, threshold=0.5, progress=False, reject=True) -> list[dict]:
        """Labels file paths, PIL images, or a NumPy batch (n, h, w, 3) / one image (h, w, 3).

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
        for indices, pixels, errors in self._decoded_batches(inputs, batch_size, progress):
            good = [p for p in pixels if p is not None]
            p_pg, ood = self.predict_and_score(np.stack(good)) if good else ([], None)
            results = iter(zip(p_pg, ood if ood is not None else [None] * len(good)))
            for i, p, error in zip(indices, pixels, errors):
                p_one, ood_one = (None, None) if p is None else next(results)
                records.append(self.record(names[i], p_one, error, threshold, ood_one, reject))
        return records

    def _read(self, source):
        """(pixels, "") or (None, reason); arrays at the model's size pass straight through."""
        try:
            if isinstance(source, np.ndarray):
                if source.shape[:2] == (self.image_size, self.image_size):
                    return np.asarray(source, np.float32), ""
                from PIL import Image
                source = Image.fromarray(np.asarray(source).clip(0, 255).astype(np.uint8))
            return read_rgb(source, self.image_size, self.resize), ""
        except (ImageError, OSError, ValueError) as error:  # a result row, not a crash
            return None, why_unreadable(error)

    def _decoded_batches(self, inputs, batch_size, progress):
        """Yields (indices, pixels, errors) per batch, decoding the next batch while one runs."""
        from tqdm import tqdm
        chunks = [list(range(i, min(i + batch_size, len(inputs))))
                  for i in range(0, len(inputs), batch_size)]
        bar = tqdm(total=len(inputs), unit="img", desc="labelling",
                   disable=not progress or len(inputs) < 2 * batch_size,
                   mininterval=0.1 if sys.stderr.isatty() else 5.0)
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            submit = lambda chunk: [pool.submit(self._read, inputs[i]) for i in chunk]  # noqa: E731
            upcoming = submit(chunks[0]) if chunks else []
            for n, chunk in enumerate(chunks):
                current, upcoming = upcoming, submit(chunks[n + 1]) if n + 1 < len(chunks) else []
                results = [future.result() for future in current]
                yield chunk, [r[0] for r in results], [r[1] for r in results]
                bar.update(len(chunk))
        bar.close()


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
    import keras
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
        raise UserError(f"could not load {path} as a Keras model ({type(error).__name__}: "
                        f"{text})") from None


def load_keras_classifier(path: Path, trust_model: bool = False) -> Classifier:
    """A .keras or .h5 file: this project's (preprocessing inside) or the original's (outside)."""
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
    if stages is not None:  # one pass gives P(PG) and the features the OOD check reads
        from GAmodel import scoring_model
        scorer = scoring_model(model)[0]
        return Classifier(path, one_batch_shape(lambda x: scorer.predict_on_batch(x)),
                          card, model=model, ood_stages=stages)
    return Classifier(path, one_batch_shape(lambda x: (model.predict_on_batch(x), None)), card,
                      model=model)


def one_batch_shape(run):
    """Keras traces its predict function again for each new batch shape (about 2 s for a
    ResNet-101): a short last batch is padded to the widest batch seen so far instead."""
    widest = 0

    def run_padded(x):
        nonlocal widest
        n, widest = len(x), max(widest, len(x))
        if n < widest:
            x = np.concatenate([x, np.zeros((widest - n, *x.shape[1:]), x.dtype)])
        return tuple(None if y is None else np.asarray(y)[:n] for y in run(x))
    return run_padded


def ood_statistics(path: Path, card: dict) -> list[dict] | None:
    """The OOD statistics saved beside a model of this project (ood.npz, or ood.int8.npz for an
    int8 copy), or None."""
    if not card["preprocessing_inside"]:
        return None
    return GAood.load(path.parent / GAood.file_for(card))


def load_onnx_classifier(path: Path) -> Classifier:
    """An .onnx file through ONNX Runtime (no TensorFlow): ours carries its card as metadata."""
    import onnxruntime as ort
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:
        raise UserError(f"could not load {path} as an ONNX model ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:200]})") from None
    model_input = session.get_inputs()[0]
    shape = model_input.shape
    if len(shape) != 4 or shape[-1] != 3:
        raise UserError(f"{path} is not a CEX/PG classifier: expected an NHWC input "
                        f"(batch, size, size, 3). Received: {shape}")
    metadata = session.get_modelmeta().custom_metadata_map
    if CARD_KEY in metadata:
        card = dict(json.loads(metadata[CARD_KEY]), preprocessing_inside=True)
    else:  # the original project's tf2onnx export: preprocessed input
        card = original_model_card(shape[1] if isinstance(shape[1], int) else 224)
    name = model_input.name
    fixed_batch = shape[0] if isinstance(shape[0], int) else None
    # Our files' second output holds the features the OOD check reads.
    stages = ood_statistics(path, card) if len(session.get_outputs()) > 1 else None

    def run(x):
        outputs = session.run(None, {name: x})
        return outputs[0], outputs[1] if stages is not None else None
    return Classifier(path, run, card, fixed_batch=fixed_batch, ood_stages=stages)


def load_classifier(path: str | Path, trust_model: bool = False) -> Classifier:
    """Loads a .keras, .h5 or .onnx classifier, this project's or the original project's.

    The returned object's `label(...)` takes file paths, PIL images or a NumPy batch of RGB 0-255
    images and returns records with the label, P(PG) and confidence; `predict(batch)` returns
    P(PG) for images already at `image_size`. trust_model allows a legacy .h5 file's Lambda
    layers, whose Python code runs on loading (never needed for this project's files).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no model file at {path}; {GET_WEIGHTS_HELP}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return load_onnx_classifier(path)
    if suffix in (".keras", ".h5", ".hdf5"):
        return load_keras_classifier(path, trust_model)
    raise UserError(f"unknown model format {suffix!r}. Expected .keras, .h5 or .onnx. "
                    f"Received: weights={path}")


def format_table(records: list[dict]) -> str:
    """An aligned text table of the records."""
    width = max([len(Path(r["file"]).name) for r in records] + [4])
    lines = [f"{'file':<{width}}  label    P(PG)   confidence  ood_score"]
    for r in records:
        name = Path(r["file"]).name
        if r["label"] == "ERROR":
            lines.append(f"{name:<{width}}  ERROR    {r['error']}")
        else:
            ood = "" if r["ood_score"] is None else f"{r['ood_score']:9.2f}"
            lines.append(f"{name:<{width}}  {r['label']:<7}  {r['p_pg']:.4f}  {r['confidence']:.4f}"
                         f"      {ood}")
    return "\n".join(lines)


def summary(records: list[dict]) -> str:
    counts = {name: sum(r["label"] == name for r in records)
              for name in (*CLASS_NAMES, UNKNOWN, "ERROR")}
    return f"{len(records)} images: " + ", ".join(f"{v} {k}" for k, v in counts.items())


def pooled_features(classifier: Classifier, files: list[str], batch_size: int) -> np.ndarray:
    """The backbone's globally pooled features of each image (the map's input)."""
    import keras
    if classifier.model is None:
        raise UserError("the embedding map needs a .keras or .h5 model (an .onnx file holds only "
                        "the classifier's output); pass --weights with the .keras file")
    from GAmodel import pooling_layer
    extractor = keras.Model(classifier.model.inputs, pooling_layer(classifier.model).output)
    features = [np.asarray(extractor.predict_on_batch(classifier.model_input(pixels)))
                for _, pixels, _ in classifier._decoded_batches(files, batch_size, progress=False)]
    return np.concatenate(features)


def draw_map(classifier, records: list[dict], out_dir: Path, clusters: int, batch_size: int,
             seed=42) -> list[dict]:
    """PCA of pooled features to 2-D, k-means clusters, a labelled scatter plot and a CSV."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from GAreport import plot_embedding_map
    usable = [r for r in records if r["label"] != "ERROR"]
    if len(usable) < max(clusters, 2):
        raise UserError(f"the map needs at least {max(clusters, 2)} readable images. "
                        f"Received: {len(usable)}")
    features = pooled_features(classifier, [r["file"] for r in usable], batch_size)
    xy = PCA(n_components=2, random_state=seed).fit_transform(features)
    cluster = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(features)
    rows = [{"file": r["file"], "x": float(x), "y": float(y), "cluster": int(c),
             "label": r["label"], "p_pg": r["p_pg"]} for r, (x, y), c in zip(usable, xy, cluster)]
    write_csv(rows, out_dir / "embedding_map.csv", list(rows[0]))
    plot_embedding_map(rows, out_dir / "embedding_map.png")
    return rows


def check_settings(s: dict) -> list[Path]:
    """Checks the settings before the model is loaded; returns the image files."""
    folder = Path(s["images"])
    if not folder.is_dir():
        raise UserError(f"no image folder at images={folder}; put the images to label there or "
                        "pass --images FOLDER")
    files = list_images(folder, s["recursive"])
    if not files:
        hint = "" if s["recursive"] else " (add --recursive to look in subfolders)"
        raise UserError(f"no PNG, JPEG, BMP or TIFF images in {folder}{hint}")
    if s["batch_size"] < 1:
        raise UserError(f"batch_size must be at least 1. Received: batch_size={s['batch_size']}")
    targets = [Path(s["out"])] if s["out"] else []
    if s["map"]:
        targets += [Path(s["map"], "embedding_map.png"), Path(s["map"], "embedding_map.csv")]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not s["overwrite"]:
        raise UserError(f"{', '.join(existing)} already exist; choose another name or pass "
                        "--overwrite")
    if s["explain"]:
        if Path(s["weights"]).suffix.lower() == ".onnx":
            raise UserError("--explain needs the gradients of a .keras or .h5 model (ONNX Runtime "
                            "gives none); pass --weights with the .keras file")
        clashes = [f for f in files if Path(s["explain"], f"{f.stem}_gradcam.png").exists()]
        if clashes and not s["overwrite"]:
            raise UserError(f"{s['explain']} already holds Grad-CAM overlays of these images "
                            f"(e.g. {clashes[0].stem}_gradcam.png); choose another folder or pass "
                            "--overwrite")
    if not Path(s["weights"]).is_file():
        raise UserError(f"no model file at weights={s['weights']}; {GET_WEIGHTS_HELP}")
    return files


def main(argv=None):
    s, _ = parse_settings(__file__, "Label microscope images as CEX or PG.", argv)
    files = check_settings(s)
    with contextlib.ExitStack() as locks:  # a second run writing the same files is refused
        for target in (s["out"], s["map"], s["explain"]):
            if target:
                locks.enter_context(exclusive_lock(target, "another labelling run"))
        return label_folder(s, files)


def label_folder(s: dict, files: list[Path]) -> int:
    """Labels the files, prints and writes the results; returns the exit status."""
    classifier = load_classifier(s["weights"], s["trust_model"])
    if not classifier.card["preprocessing_inside"]:
        print(f"{Path(s['weights']).name}: the original project's format (input preprocessed "
              "outside the model); applying its ResNet preprocessing and nearest resize")
    if s["reject"] and not classifier.can_reject:
        print("note: rejection of images unlike the training data is unavailable for this model "
              f"(no {GAood.file_for(classifier.card)} beside it, or not this project's model); "
              "every readable image gets CEX or PG")
    records = classifier.label([str(f) for f in files], s["batch_size"], s["threshold"],
                               progress=True, reject=s["reject"])
    print(format_table(records))
    print(summary(records))
    if s["out"]:
        write_csv(records, Path(s["out"]), COLUMNS)
        print(f"labels written to {s['out']}")
    if s["explain"]:
        from GAexplain import explain_files
        readable = [r["file"] for r in records if r["label"] != "ERROR"]
        written = explain_files(classifier, readable, Path(s["explain"]), s["batch_size"])
        print(f"{len(written)} Grad-CAM overlays written to {s['explain']}/")
    if s["map"]:
        draw_map(classifier, records, Path(s["map"]), s["clusters"], s["batch_size"])
        print(f"embedding map written to {Path(s['map'], 'embedding_map.png')} and .csv")
    failed = sum(r["label"] == "ERROR" for r in records)
    if failed:
        print(f"{failed} file(s) could not be read; see the ERROR rows", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
