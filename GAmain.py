"""Trains the CEX/PG classifier and writes a complete, reloadable run folder.

    python GAmain.py                          # the settings below: ResNet-101, ImageNet weights
    python GAmain.py --demo                   # the whole job on synthetic images, a few minutes
    python GAmain.py --preset paper           # Salami et al.'s recipe: ResNet-50, lr 1e-4, batch 32
    python GAmain.py --data images/split --epochs 30 --batch_size 32

Each run writes a new folder under RUNS: model.keras, model.h5 (legacy, as the original shipped),
model.onnx, history.csv, training_curves.png, confusion_matrix.png, test_report.txt, config.json.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for users

import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

from GAcli import UserError, parse_settings, run_main  # noqa: E402

# --- settings (edit here, or override on the command line with the same names) ---
data = "images/split"  # split folder with train/ val/ test/, each holding CEX/ and PG/ (GAsplit.py)
preset = "original"  # original (the recipe below) or paper (ResNet50, lr 1e-4, batch 32)
backbone = "ResNet101"  # ResNet50, ResNet101, ResNet152, ResNet50V2/101V2/152V2, ResNet18 (keras-hub)
weights = "imagenet"  # imagenet (Keras's download and cache), none (scratch), or a weights file
image_size = 224  # model input side in pixels; every image is resized to it
resize = "bilinear"  # how images are resized: bilinear or nearest
trainable_fraction = 0.1  # share of backbone layers, counted from the end, that train (original 0.1)
dropout1 = 0.4  # dropout after the 512-unit layer of the head
dropout2 = 0.3  # dropout after the 256-unit layer of the head
bn_momentum = 0.99  # momentum of the backbone's BatchNorm statistics (Keras's); 0.9 settles sooner from scratch
epochs = 100  # the most epochs; the F1 rule or the val-loss early stop usually end sooner
batch_size = 64  # images per training step
lr = 0.1  # SGD learning rate
momentum = 0.9  # SGD momentum
augment = True  # rotate, shift, zoom and flip training images, as the original did
f1_stop = 0.997  # stop once both classes' validation F1 reach this (above 1 turns the rule off)
f1_patience = 0  # further epochs the F1 rule must hold before stopping (original: 0)
loss_patience = 50  # stop after this many epochs without val-loss improvement (best weights kept)
loss_min_delta = 0.001  # the smallest val-loss decrease that counts as an improvement
seed = 42  # seeds the head's initial weights, shuffling and augmentation
runs = "runs"  # each run writes a new folder here, never over an earlier one
export_onnx = True  # also write model.onnx (about a minute for ResNet-101)
# --- end of settings

PRESETS = {
    "original": {},
    "paper": {"backbone": "ResNet50", "lr": 1e-4, "batch_size": 32},  # Salami et al. (2021)
}
# --demo: the whole job on a laptop CPU in a few minutes (synthetic images, scratch weights).
# From scratch, BatchNorm statistics at Keras's momentum 0.99 lag for hundreds of steps and the
# validation F1 swings; 0.9 settles them within the second epoch. 400 images per class give the
# leak-free test split enough distinct PG crops to mean something.
DEMO = {"data": "images/split-synthetic", "backbone": "ResNet50", "weights": None,
        "image_size": 64, "trainable_fraction": 1.0, "bn_momentum": 0.9, "epochs": 10,
        "batch_size": 16, "lr": 0.01}
DEMO_SOURCE = "images/synthetic"
DEMO_COUNTS = {"cex_count": 400, "pg_count": 400}
WEIGHTS_DIR = Path("weights")
MODEL_FILES = ("model.keras", "model.h5", "model.onnx", "config.json")


def resolve_settings(s: dict, given: set) -> dict:
    """Applies --demo, then the preset, to every setting not given on the command line."""
    if s["demo"]:
        s.update({k: v for k, v in DEMO.items() if k not in given})
    if s["preset"] not in PRESETS:
        raise UserError(f"unknown preset. Expected one of {', '.join(PRESETS)}. "
                        f"Received: preset={s['preset']}")
    s.update({k: v for k, v in PRESETS[s["preset"]].items() if k not in given})
    if isinstance(s["weights"], str) and s["weights"].lower() == "none":
        s["weights"] = None
    return s


def check_settings(s: dict):
    """Checks every value before anything is built; each error names the setting and the value."""
    from GAimages import RESIZE_METHODS
    from GAmodel import BACKBONES
    positive = ("image_size", "epochs", "batch_size")
    for name in positive:
        if s[name] < 1:
            raise UserError(f"{name} must be at least 1. Received: {name}={s[name]}")
    if s["image_size"] < 32:
        raise UserError(f"image_size must be at least 32 for a ResNet. Received: {s['image_size']}")
    for name in ("lr", "trainable_fraction", "dropout1", "dropout2", "momentum", "bn_momentum"):
        if not 0 <= s[name] <= (1 if name != "lr" else 10):
            raise UserError(f"{name} is out of range. Received: {name}={s[name]}")
    if s["resize"] not in RESIZE_METHODS:
        raise UserError(f"resize must be one of {', '.join(RESIZE_METHODS)}. "
                        f"Received: resize={s['resize']}")
    if s["backbone"] not in BACKBONES:
        raise UserError(f"unknown backbone. Expected one of {', '.join(BACKBONES)}. "
                        f"Received: backbone={s['backbone']}")


def prepare_demo_data(s: dict):
    """--demo: makes synthetic images and their split, unless they are already there."""
    import GAsplit
    import GAsynth
    from GAimages import find_class_folders
    if Path(s["data"], "manifest.csv").exists():
        print(f"demo: using the existing split in {s['data']}")
        return
    if find_class_folders(DEMO_SOURCE) is None:
        print(f"demo: writing synthetic images to {DEMO_SOURCE}")
        GAsynth.main(["--out", DEMO_SOURCE] + [f"--{k}={v}" for k, v in DEMO_COUNTS.items()])
    GAsplit.main(["--source", DEMO_SOURCE, "--dest", s["data"]])


def load_splits(s: dict) -> dict:
    """Paths, labels and tf.data pipelines of train, val and test."""
    from GAdata import list_split, make_dataset
    if not Path(s["data"]).is_dir():
        raise UserError(f"no split folder at data={s['data']}; make one with `python GAsplit.py` "
                        "(or run `python GAmain.py --demo`, which makes synthetic data)")
    splits = {}
    for split in ("train", "val", "test"):
        paths, labels = list_split(Path(s["data"], split))
        dataset = make_dataset(paths, labels, s["image_size"], s["batch_size"],
                               training=split == "train" and s["augment"], seed=s["seed"],
                               resize=s["resize"])
        splits[split] = {"paths": paths, "labels": labels, "dataset": dataset}
    return splits


def class_counts(splits: dict) -> dict:
    from GAimages import CLASS_NAMES
    return {split: {name: int((part["labels"] == i).sum()) for i, name in enumerate(CLASS_NAMES)}
            for split, part in splits.items()}


def build_and_compile(s: dict):
    import keras
    from GAmodel import build_classifier
    model = build_classifier(s["backbone"], s["weights"], s["image_size"],
                             s["trainable_fraction"], (s["dropout1"], s["dropout2"]),
                             s["bn_momentum"])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=s["lr"], momentum=s["momentum"]),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


def new_run_dir(runs: str, s: dict) -> Path:
    """A new folder runs/DATE_TIME_BACKBONE[_N]; an existing one is never reused."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
    base = f"{stamp}_{s['backbone'].lower()}" + ("_demo" if s["demo"] else "")
    for n in range(1, 1000):
        run_dir = Path(runs, base if n == 1 else f"{base}_{n}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise UserError(f"could not create a new run folder in {runs}")


def train(model, splits: dict, s: dict, run_dir: Path):
    """fit() with the validation, F1-stop, early-stop and CSV-log callbacks; returns the history."""
    import keras
    from GAcallbacks import EarlyStopOnValLoss, StopWhenF1Reached, ValidationMetrics
    f1_rule = StopWhenF1Reached(s["f1_stop"], s["f1_patience"])
    loss_rule = EarlyStopOnValLoss(s["loss_patience"], s["loss_min_delta"])
    callbacks = [
        ValidationMetrics(splits["val"]["dataset"], splits["val"]["labels"]),  # first: it logs
        f1_rule,
        loss_rule,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
    ]
    history = model.fit(splits["train"]["dataset"], epochs=s["epochs"], callbacks=callbacks,
                        shuffle=False,  # the tf.data pipeline shuffles, seeded
                        verbose=2 if not sys.stdout.isatty() else 1)
    if f1_rule.stopped_epoch is not None:
        stopped_by = f"F1 rule at epoch {f1_rule.stopped_epoch + 1}"
    elif loss_rule.stopped_epoch > 0:
        stopped_by = (f"val-loss early stop at epoch {loss_rule.stopped_epoch + 1} "
                      f"(weights of epoch {loss_rule.best_epoch + 1})")
    else:
        stopped_by = f"epoch limit ({s['epochs']})"
    return history.history, stopped_by


def evaluate(model, split: dict) -> dict:
    """P(PG) for every image of a split, and the metrics and report from them."""
    from GAcallbacks import classification_metrics, report_text
    from sklearn.metrics import confusion_matrix
    p_pg = model.predict(split["dataset"], verbose=0)[:, 0]
    labels = split["labels"]
    return {"p_pg": p_pg,
            "metrics": classification_metrics(labels, p_pg, prefix="test_"),
            "report": report_text(labels, p_pg),
            "confusion": confusion_matrix(labels.astype(int), (p_pg >= 0.5).astype(int),
                                          labels=[0, 1])}


def model_card(s: dict) -> dict:
    """What inference needs to know about the model; saved in config.json and inside model.onnx."""
    from GAimages import CLASS_NAMES
    from GAmodel import BACKBONES
    return {"backbone": s["backbone"], "image_size": s["image_size"], "resize": s["resize"],
            "class_names": list(CLASS_NAMES), "output": "P(PG), sigmoid",
            "input": "RGB 0-255, float32, shape (batch, size, size, 3); "
                     "preprocessing is inside the model",
            "preprocessing": BACKBONES[s["backbone"]][1]}


def add_onnx_model_card(path: Path, card: dict):
    """Stores the model card in the .onnx file's metadata, so the file describes itself."""
    import onnx
    from GAinfer import CONFIG_KEY
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, json.dumps(card)
    onnx.save(model, str(path))


def save_models(model, run_dir: Path, s: dict) -> list[Path]:
    """The trained model as .keras, legacy .h5 and (optionally) .onnx."""
    files = [run_dir / "model.keras", run_dir / "model.h5"]
    model.save(files[0])
    import absl.logging
    verbosity = absl.logging.get_verbosity()
    absl.logging.set_verbosity(absl.logging.ERROR)  # Keras warns that .h5 is legacy: we know
    model.save(files[1])
    absl.logging.set_verbosity(verbosity)
    if s["export_onnx"]:
        print("exporting model.onnx (about a minute for ResNet-101) ...")
        files.append(run_dir / "model.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.export(str(files[-1]), format="onnx", verbose=False)
        add_onnx_model_card(files[-1], model_card(s))
    return files


def library_versions() -> dict:
    import keras
    import numpy
    import sklearn
    import tensorflow
    return {"python": platform.python_version(), "tensorflow": tensorflow.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__, "scikit-learn": sklearn.__version__}


def write_config(run_dir: Path, s: dict, counts: dict, history: dict, stopped_by: str,
                 test: dict, elapsed: float, files: list[Path]):
    """config.json: what inference needs (model section), and everything to reproduce the run."""
    config = {
        "model": model_card(s),
        "settings": {k: v for k, v in s.items()},
        "dataset": counts,
        "training": {"epochs_run": len(history["loss"]), "stopped_by": stopped_by,
                     "elapsed_seconds": round(elapsed, 1),
                     "final": {k: v[-1] for k, v in history.items()}},
        "test": test["metrics"],
        "versions": library_versions(),
        "files": [f.name for f in files],
        "created": datetime.now().isoformat(timespec="seconds"),
        "demo": bool(s["demo"]),
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=2, default=float))


def publish_demo_model(run_dir: Path):
    """--demo: copies the model into weights/ for GAinfer.py, unless a model of yours is there."""
    config = WEIGHTS_DIR / "config.json"
    if (WEIGHTS_DIR / "model.keras").exists() and not (
            config.exists() and json.loads(config.read_text()).get("demo")):
        print(f"weights/ holds a model that is not a demo model; left it alone (demo model: {run_dir})")
        return
    WEIGHTS_DIR.mkdir(exist_ok=True)
    for name in MODEL_FILES:
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, WEIGHTS_DIR / name)
    print(f"copied the demo model to {WEIGHTS_DIR}/ for GAinfer.py")


def main(argv=None):
    s, given = parse_settings(__file__, "Train the CEX/PG crystal classifier.", argv,
                              extra=[("demo", "the whole job on synthetic images in a few minutes "
                                              "(sets small images, scratch weights, few epochs)")])
    s = resolve_settings(s, given)
    check_settings(s)
    if s["demo"]:
        prepare_demo_data(s)
    started = time.time()
    import keras
    keras.utils.set_random_seed(s["seed"])
    splits = load_splits(s)
    counts = class_counts(splits)
    print("images:", ", ".join(f"{k} {v['CEX']} CEX + {v['PG']} PG" for k, v in counts.items()))
    model = build_and_compile(s)
    run_dir = new_run_dir(s["runs"], s)
    print(f"run folder: {run_dir}")
    history, stopped_by = train(model, splits, s, run_dir)
    test = evaluate(model, splits["test"])
    files = save_models(model, run_dir, s)
    from GAreport import plot_confusion_matrix, plot_history
    plot_history(history, run_dir / "training_curves.png")
    plot_confusion_matrix(test["confusion"], run_dir / "confusion_matrix.png")
    (run_dir / "test_report.txt").write_text(
        f"Test set: {len(test['p_pg'])} images, threshold P(PG) >= 0.5 -> PG\n\n{test['report']}")
    write_config(run_dir, s, counts, history, stopped_by, test, time.time() - started, files)
    if s["demo"]:
        publish_demo_model(run_dir)
    print(f"\nstopped by: {stopped_by}\ntest set:\n{test['report']}")
    print(f"done in {time.time() - started:.0f} s. Everything is in {run_dir}/:")
    for path in sorted(run_dir.iterdir()):
        print(f"  {path.name}")
    print(f"next: python GAinfer.py --weights {run_dir / 'model.keras'} --images FOLDER")


if __name__ == "__main__":
    sys.exit(run_main(main))
