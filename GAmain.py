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
from GAfiles import copy_atomic, exclusive_lock  # noqa: E402
import GAonnx  # noqa: E402

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
export_onnx = True  # also write model.onnx (about 15 s for ResNet-101)
resume = ""  # the folder of an interrupted run, to continue it from its last completed epoch
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
MODEL_FILES = ("model.keras", "model.h5", "model.onnx", "config.json", "ood.npz")
BACKUP = "backup"  # in the run folder while training: Keras's BackupAndRestore files
RANDOM_STATE = "random_state.json"  # in BACKUP: the dropout layers' random streams


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


def load_splits(s: dict, first_epoch: int = 0) -> dict:
    """Paths, labels and tf.data pipelines of train, val and test (the training pipeline starts
    at first_epoch's shuffle order: a resumed run's)."""
    from GAdata import augmentation, drop_unreadable, list_split, make_dataset
    if not Path(s["data"]).is_dir():
        raise UserError(f"no split folder at data={s['data']}; make one with `python GAsplit.py` "
                        "(or run `python GAmain.py --demo`, which makes synthetic data)")
    splits = {}
    for split in ("train", "val", "test"):
        paths, labels = list_split(Path(s["data"], split))
        paths, labels, skipped = drop_unreadable(paths, labels, s["image_size"], s["resize"])
        for path, reason in skipped:
            print(f"skipped {path}: {reason}")
        if len(set(labels.tolist())) < 2:
            raise UserError(f"{Path(s['data'], split)} has no readable images of one class")
        augment = augmentation(s["seed"]) if split == "train" and s["augment"] else None
        dataset = make_dataset(paths, labels, s["image_size"], s["batch_size"],
                               shuffle=split == "train", augment=augment, seed=s["seed"],
                               resize=s["resize"], first_epoch=first_epoch)
        splits[split] = {"paths": paths, "labels": labels, "dataset": dataset, "augment": augment}
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


def read_history(run_dir: Path, before_epoch: int | None = None) -> list[dict]:
    """history.csv's rows as dicts of floats (without the epoch column), optionally only the
    rows of epochs before `before_epoch`."""
    import csv
    path = run_dir / "history.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if before_epoch is not None:
        rows = [row for row in rows if row["epoch"] < before_epoch]
    return [{k: v for k, v in row.items() if k != "epoch"} for row in rows]


def write_history(run_dir: Path, rows: list[dict]):
    from GAfiles import write_csv
    if rows:
        write_csv([{"epoch": i, **row} for i, row in enumerate(rows)], run_dir / "history.csv",
                  ["epoch", *rows[0]])
    else:
        (run_dir / "history.csv").unlink(missing_ok=True)


def backed_up_epochs(run_dir: Path) -> int:
    """Epochs completed according to the run's backup (0 when there is none)."""
    metadata = run_dir / BACKUP / "training_metadata.json"
    return json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0


def train(model, splits: dict, s: dict, run_dir: Path):
    """fit() with the validation, stop-rule, NaN, backup and CSV-log callbacks.

    A resumed run continues from the backup's epoch; history.csv is first cut back to the epochs
    the backup holds (a crash can fall between writing a row and the backup). Returns the
    history of every epoch (from history.csv) and what stopped the run.
    """
    import keras
    from GAcallbacks import (BackupEachEpoch, EarlyStopOnValLoss, StopOnNaN, StopWhenF1Reached,
                             ValidationMetrics)
    from GAdata import random_state, restore_random_state, steps_per_epoch
    earlier = read_history(run_dir, before_epoch=backed_up_epochs(run_dir))
    write_history(run_dir, earlier)
    train_split = splits["train"]
    if earlier:
        print(f"resuming after epoch {len(earlier)} from {run_dir / BACKUP}")
        state = json.loads((run_dir / BACKUP / RANDOM_STATE).read_text())
        restore_random_state([model], state)
    f1_rule = StopWhenF1Reached(s["f1_stop"], s["f1_patience"], earlier)
    loss_rule = EarlyStopOnValLoss(s["loss_patience"], s["loss_min_delta"], earlier)
    nan_guard = StopOnNaN()
    callbacks = [
        nan_guard,
        ValidationMetrics(splits["val"]["dataset"], splits["val"]["labels"]),  # it logs for the rest
        f1_rule,
        loss_rule,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        BackupEachEpoch(run_dir / BACKUP, nan_guard,  # after the CSV row: see the docstring
                        extra_state=lambda: {RANDOM_STATE: random_state([model])}),
    ]
    try:
        model.fit(train_split["dataset"], epochs=s["epochs"], callbacks=callbacks,
                  steps_per_epoch=steps_per_epoch(len(train_split["paths"]), s["batch_size"]),
                  shuffle=False,  # the tf.data pipeline shuffles, seeded
                  verbose=2 if not sys.stdout.isatty() else 1)
    except KeyboardInterrupt:
        print(f"\ninterrupted. Every completed epoch is saved; continue with:\n"
              f"  python GAmain.py --resume {run_dir}", file=sys.stderr)
        raise
    if nan_guard.where is not None:
        raise UserError(nan_message(nan_guard.where, s, run_dir))
    if f1_rule.stopped_epoch is not None:
        stopped_by = f"F1 rule at epoch {f1_rule.stopped_epoch + 1}"
    elif loss_rule.stopped_epoch > 0:
        stopped_by = (f"val-loss early stop at epoch {loss_rule.stopped_epoch + 1} "
                      f"(weights of epoch {loss_rule.best_epoch + 1})")
    else:
        stopped_by = f"epoch limit ({s['epochs']})"
    return columns(read_history(run_dir)), stopped_by


def columns(rows: list[dict]) -> dict[str, list[float]]:
    """Rows of per-epoch logs as Keras's History does: a list of values per metric."""
    return {k: [row[k] for row in rows] for k in rows[0]} if rows else {}


def nan_message(where: tuple[int, int], s: dict, run_dir: Path) -> str:
    """Why the loss went NaN, most likely, and what to do about it."""
    epoch, batch = where
    cause = (f"the learning rate lr={s['lr']} is too high for a network that starts from scratch "
             "(--weights none); lr 0.1 is the original's rate for ImageNet weights"
             if s["weights"] is None else f"the learning rate lr={s['lr']} is too high")
    kept = backed_up_epochs(run_dir)
    what = (f"the training loss became NaN in epoch {epoch + 1}, batch {batch + 1}" if batch is not None
            else f"the weights became NaN or infinite in epoch {epoch + 1} (the loss diverged)")
    return (f"{what}. Most likely "
            f"{cause}; start again with a lower one, e.g. --lr {s['lr'] / 10:g}. The last good "
            + (f"state (epoch {kept}) is kept in {run_dir / BACKUP}" if kept
               else "state was the initial one; nothing to keep"))


def evaluate(scorer, split: dict, ood_stages: list[dict]) -> dict:
    """P(PG) and ood_score for every image of a split (one pass), and the metrics and report."""
    import GAood
    from GAcallbacks import classification_metrics, report_text
    from sklearn.metrics import confusion_matrix
    p_pg, features = scorer.predict(split["dataset"], verbose=0)
    p_pg = p_pg[:, 0]
    labels = split["labels"]
    return {"p_pg": p_pg, "ood_score": GAood.scores(ood_stages, features),
            "metrics": classification_metrics(labels, p_pg, prefix="test_"),
            "report": report_text(labels, p_pg),
            "confusion": confusion_matrix(labels.astype(int), (p_pg >= 0.5).astype(int),
                                          labels=[0, 1])}


def fit_ood(scorer, sizes: list[int], splits: dict, s: dict, run_dir: Path) -> tuple[list, dict]:
    """Fits the out-of-distribution statistics on (up to GAood.FIT_IMAGES) un-augmented training
    images, calibrates them on the validation images and saves them as ood.npz."""
    import numpy as np
    import GAood
    from GAdata import make_dataset
    started = time.time()
    train = splits["train"]
    chosen = GAood.fitting_indices(len(train["paths"]), s["seed"])
    dataset = make_dataset([train["paths"][i] for i in chosen], train["labels"][chosen],
                           s["image_size"], s["batch_size"], resize=s["resize"])
    train_features = scorer.predict(dataset, verbose=0)[1]
    val_features = scorer.predict(splits["val"]["dataset"], verbose=0)[1]
    stages = GAood.fit(train_features, train["labels"][chosen], val_features, sizes)
    GAood.save(stages, run_dir / GAood.FILE_NAME)
    summary = {"file": GAood.FILE_NAME, "threshold": 1.0, "method": "multi-stage Mahalanobis",
               "fit_images": len(chosen),
               "val_pass_rate": float(np.mean(GAood.scores(stages, val_features) <= 1)),
               "stage_scales": [float(stage["scale"]) for stage in stages],
               "seconds": round(time.time() - started, 1)}
    print(f"out-of-distribution check fitted on {len(chosen)} training images; "
          f"{100 * summary['val_pass_rate']:.1f}% of validation images pass")
    return stages, summary


def model_card(s: dict) -> dict:
    """What inference needs to know about the model; saved in config.json and inside model.onnx."""
    from GAimages import CLASS_NAMES
    from GAmodel import BACKBONES
    return {"backbone": s["backbone"], "image_size": s["image_size"], "resize": s["resize"],
            "class_names": list(CLASS_NAMES), "output": "P(PG), sigmoid",
            "input": "RGB 0-255, float32, shape (batch, size, size, 3); "
                     "preprocessing is inside the model",
            "preprocessing": BACKBONES[s["backbone"]][1]}


def save_models(model, scorer, run_dir: Path, s: dict) -> list[Path]:
    """The trained model as .keras, legacy .h5 and (optionally) .onnx, each written under a
    temporary name and renamed when complete (a crash never leaves a truncated model file).

    The .onnx file is the scoring model: outputs P(PG) and the out-of-distribution features, so
    that ONNX Runtime can reject foreign images too."""
    from GAfiles import atomic_path
    files = [run_dir / "model.keras", run_dir / "model.h5"]
    with atomic_path(files[0]) as temporary:
        model.save(temporary)
    import absl.logging
    verbosity = absl.logging.get_verbosity()
    absl.logging.set_verbosity(absl.logging.ERROR)  # Keras warns that .h5 is legacy: we know
    with atomic_path(files[1]) as temporary:
        model.save(temporary)
    absl.logging.set_verbosity(verbosity)
    if s["export_onnx"]:
        print("exporting model.onnx (about 15 s for ResNet-101) ...")
        files.append(run_dir / "model.onnx")
        with atomic_path(files[-1]) as temporary, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GAonnx.export_onnx(scorer, temporary, model_card(s))
    return files


def library_versions() -> dict:
    import keras
    import numpy
    import sklearn
    import tensorflow
    return {"python": platform.python_version(), "tensorflow": tensorflow.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__, "scikit-learn": sklearn.__version__}


def run_config(s: dict, counts: dict, training: dict, test: dict | None = None,
               files: tuple = (), ood: dict | None = None) -> dict:
    """config.json's content: what inference needs (model section), and everything to
    reproduce the run."""
    return {
        "model": model_card(s),
        "settings": {k: v for k, v in s.items()},
        "dataset": counts,
        "training": training,
        "test": test["metrics"] if test else None,
        "ood": ood,
        "versions": library_versions(),
        "files": [f.name for f in files],
        "created": datetime.now().isoformat(timespec="seconds"),
        "demo": bool(s["demo"]),
    }


def write_config(run_dir: Path, config: dict):
    """Written when the run starts (training: {"status": "running"}), which is what --resume
    reads, and again, complete, at the end."""
    from GAfiles import write_text_atomic
    write_text_atomic(run_dir / "config.json", json.dumps(config, indent=2, default=float))


def write_report(model, test_split: dict, test: dict, s: dict, run_dir: Path, config: dict,
                 history: dict) -> float:
    """report.html in the run folder; returns the seconds it took."""
    from GAreport import gallery_html, write_html_report
    started = time.time()
    gallery = gallery_html(model, test_split["paths"], test_split["labels"], test["p_pg"],
                           test["ood_score"], s["image_size"], s["resize"])
    leak = Path(s["data"], "leak_report.txt")
    write_html_report(run_dir / "report.html", config, history, gallery, run_dir,
                      leak.read_text() if leak.exists() else None)
    return round(time.time() - started, 2)


def settings_to_resume(s: dict, given: set) -> dict:
    """--resume RUN_DIR: the run's own settings from its config.json, checked for a usable run."""
    run_dir = Path(s["resume"])
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.json); pass the folder that "
                        "GAmain.py printed as 'run folder:'")
    config = json.loads(config_path.read_text())
    if config["training"].get("status") != "running":
        raise UserError(f"the run in {run_dir} has finished; there is nothing to resume")
    others = sorted(given - {"resume"})
    if others:
        raise UserError(f"a resumed run keeps its own settings; leave out {', '.join(others)} "
                        "(or start a new run)")
    print(f"resuming the run in {run_dir} with its settings")
    return dict(config["settings"], resume=str(run_dir))


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
            copy_atomic(run_dir / name, WEIGHTS_DIR / name)
    print(f"copied the demo model to {WEIGHTS_DIR}/ for GAinfer.py")


def main(argv=None):
    s, given = parse_settings(__file__, "Train the CEX/PG crystal classifier.", argv,
                              extra=[("demo", "the whole job on synthetic images in a few minutes "
                                              "(sets small images, scratch weights, few epochs)")])
    if s["resume"]:
        run_dir = Path(s["resume"])
        with exclusive_lock(run_dir, "another training run"):  # before reading its state
            run(settings_to_resume(s, given), run_dir)
        return
    s = resolve_settings(s, given)
    check_settings(s)
    if s["demo"]:
        prepare_demo_data(s)
    run(s)


def run(s: dict, resumed_dir: Path | None = None):
    """Loads the data, builds the model, trains (or resumes) and writes the deliverables."""
    started = time.time()
    import keras
    keras.utils.set_random_seed(s["seed"])
    splits = load_splits(s, first_epoch=backed_up_epochs(resumed_dir) if resumed_dir else 0)
    counts = class_counts(splits)
    print("images:", ", ".join(f"{k} {v['CEX']} CEX + {v['PG']} PG" for k, v in counts.items()))
    model = build_and_compile(s)
    if resumed_dir is not None:
        print(f"run folder: {resumed_dir}")
        history, stopped_by = train_or_restore(model, splits, s, resumed_dir)
        return deliver(model, splits, s, resumed_dir, counts, history, stopped_by, started)
    run_dir = new_run_dir(s["runs"], s)  # only now: a failed build leaves no empty run folder
    with exclusive_lock(run_dir, "another training run"):
        print(f"run folder: {run_dir}")
        write_config(run_dir, run_config(s, counts, {"status": "running"}))  # --resume reads it
        history, stopped_by = train_or_restore(model, splits, s, run_dir)
        deliver(model, splits, s, run_dir, counts, history, stopped_by, started)


def train_or_restore(model, splits: dict, s: dict, run_dir: Path):
    """Trains; or, when a resumed run had finished training before it stopped (while saving),
    restores the trained weights. Either way the trained weights are kept in the backup folder
    until every deliverable is written."""
    finished = run_dir / BACKUP / "trained.json"
    if finished.exists():
        print("training had finished; writing the deliverables")
        model.load_weights(run_dir / BACKUP / "trained.weights.h5")
        return columns(read_history(run_dir)), json.loads(finished.read_text())["stopped_by"]
    history, stopped_by = train(model, splits, s, run_dir)
    model.save_weights(run_dir / BACKUP / "trained.weights.h5")
    finished.write_text(json.dumps({"stopped_by": stopped_by}))
    return history, stopped_by


def deliver(model, splits, s, run_dir, counts, history, stopped_by, started):
    """Fits the OOD check, evaluates on the test split and writes every deliverable; then drops
    the backup."""
    from GAmodel import scoring_model
    scorer, sizes = scoring_model(model)
    ood_stages, ood = fit_ood(scorer, sizes, splits, s, run_dir)
    test = evaluate(scorer, splits["test"], ood_stages)
    files = save_models(model, scorer, run_dir, s)
    from GAreport import plot_confusion_matrix, plot_history
    plot_history(history, run_dir / "training_curves.png")
    plot_confusion_matrix(test["confusion"], run_dir / "confusion_matrix.png")
    (run_dir / "test_report.txt").write_text(
        f"Test set: {len(test['p_pg'])} images, threshold P(PG) >= 0.5 -> PG\n\n{test['report']}")
    training = {"status": "finished", "epochs_run": len(history["loss"]), "stopped_by": stopped_by,
                "resumed": bool(s["resume"]), "elapsed_seconds": round(time.time() - started, 1),
                "final": {k: v[-1] for k, v in history.items()}}
    ood["test_pass_rate"] = float((test["ood_score"] <= 1).mean())
    config = run_config(s, counts, training, test, files + [run_dir / ood["file"]], ood)
    config["report_seconds"] = write_report(model, splits["test"], test, s, run_dir, config, history)
    write_config(run_dir, config)
    shutil.rmtree(run_dir / BACKUP, ignore_errors=True)
    if s["demo"]:
        publish_demo_model(run_dir)
    print(f"\nstopped by: {stopped_by}\ntest set:\n{test['report']}")
    print(f"done in {time.time() - started:.0f} s. Everything is in {run_dir}/:")
    for path in sorted(run_dir.iterdir()):
        print(f"  {path.name}")
    print(f"next: python GAinfer.py --weights {run_dir / 'model.keras'} --images FOLDER")


if __name__ == "__main__":
    sys.exit(run_main(main))
