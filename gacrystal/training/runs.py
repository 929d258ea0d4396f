"""The run folder's books: a new folder per run, history.csv, config.json, the backup that
--resume reads, and publishing a model to weights/.

A run folder holds, while training, `config.json` with training.status "running" (what --resume
reads) and `backup/` (Keras's BackupAndRestore files, the random streams, and once training has
finished the trained weights); at the end, the deliverables and the complete config.json, and no
backup.
"""
from __future__ import annotations

import contextlib
import json
import platform
import shutil
from datetime import datetime
from pathlib import Path

from gacrystal.classifier import config_beside
from gacrystal.errors import UserError
from gacrystal.files import (CONFIG_JSON, HISTORY_CSV, MODEL_H5, MODEL_KERAS, MODEL_ONNX,
                             OOD_NPZ, copy_atomic, exclusive_lock, write_csv, write_text_atomic)

BACKUP = "backup"  # in the run folder while training: Keras's BackupAndRestore files
RANDOM_STATE = "random_state.json"  # in BACKUP: the dropout layers' random streams
NETWORK = "network.json"  # in BACKUP: {"batchnorm_folded": bool}, the layout its weights are in
TRAINED_WEIGHTS = "trained.weights.h5"  # in BACKUP once training has finished
TRAINED = "trained.json"  # in BACKUP beside them: what stopped the run
MODEL_FILES = (MODEL_KERAS, MODEL_H5, MODEL_ONNX, CONFIG_JSON, OOD_NPZ)  # a demo model's, copied
RESUMED = "resumed run"  # where a resumed run's settings came from
WEAK_F1 = 0.5  # a class's test F1 below this gets a warning at the end of a run


def new_run_dir(runs: str | Path, backbone: str, demo: bool = False, name: str = "") -> Path:
    """A new folder runs/DATE_TIME_BACKBONE[_demo][_N], or runs/NAME; an existing one is never
    reused."""
    if name:
        run_dir = Path(runs, name)
        try:
            run_dir.mkdir(parents=True)
        except FileExistsError:
            raise UserError(f"{run_dir} exists; a run never writes over an earlier one: choose "
                            f"another run_name, or continue it with --resume {run_dir}") from None
        return run_dir
    stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
    base = f"{stamp}_{backbone.lower()}" + ("_demo" if demo else "")
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
    path = run_dir / HISTORY_CSV
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if before_epoch is not None:
        rows = [row for row in rows if row["epoch"] < before_epoch]
    return [{k: v for k, v in row.items() if k != "epoch"} for row in rows]


def write_history(run_dir: Path, rows: list[dict]):
    """history.csv of these rows (a resumed run's, cut back to its backup), as HistoryRows
    appends them: the same columns, cells and line ends."""
    if rows:
        write_csv([{"epoch": i, **row} for i, row in enumerate(rows)], run_dir / HISTORY_CSV,
                  ["epoch", *rows[0]], line_end="\n")
    else:
        (run_dir / HISTORY_CSV).unlink(missing_ok=True)


def columns(rows: list[dict]) -> dict[str, list[float]]:
    """Rows of per-epoch logs as Keras's History does: a list of values per metric."""
    return {k: [row[k] for row in rows] for k in rows[0]} if rows else {}


def backup_is_folded(run_dir: Path | None) -> bool:
    """Whether a run continues with the frozen BatchNorm folded (gacrystal.training.folding):
    a new run does; a resumed one as its backup was written (a backup from before the folding,
    without NETWORK, holds the unfolded network's weights and continues unfolded)."""
    if not backed_up_epochs(run_dir):
        return True
    network = run_dir / BACKUP / NETWORK
    return network.exists() and json.loads(network.read_text())["batchnorm_folded"]


def backed_up_epochs(run_dir: Path | None) -> int:
    """Epochs completed according to the run's backup (0 when there is none)."""
    if run_dir is None:
        return 0
    metadata = run_dir / BACKUP / "training_metadata.json"
    return json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0


def library_versions() -> dict:
    import keras
    import numpy
    import sklearn
    import tensorflow
    return {"python": platform.python_version(), "tensorflow": tensorflow.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__}


def run_config(settings: dict, sources: dict, card: dict, counts: dict, training: dict,
               test: dict | None = None, files: tuple = (), ood: dict | None = None) -> dict:
    """config.json's content: what inference needs (model section), and everything to reproduce
    the run, including where each setting's value came from."""
    return {
        "model": card,
        "settings": dict(settings),
        "settings_source": dict(sources),
        "dataset": counts,
        "training": training,
        "test": test,
        "ood": ood,
        "versions": library_versions(),
        "files": [Path(f).name for f in files],
        "created": datetime.now().isoformat(timespec="seconds"),
        "demo": bool(settings.get("demo")),
    }


def write_config(run_dir: Path, config: dict):
    """Written when the run starts (training: {"status": "running"}), which is what --resume
    reads, and again, complete, at the end."""
    write_text_atomic(run_dir / CONFIG_JSON, json.dumps(config, indent=2, default=float))


def resumed_settings(run_dir: Path) -> tuple[dict, dict]:
    """--resume RUN_DIR: the run's own settings from its config.json, checked for a usable run.

    Returns:
        (settings, sources), every source "resumed run".
    """
    config_path = run_dir / CONFIG_JSON
    if not config_path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.json); pass the folder that "
                        "GAmain.py printed as 'run folder:'")
    config = json.loads(config_path.read_text())
    if config["training"].get("status") != "running":
        raise UserError(f"the run in {run_dir} has finished; there is nothing to resume")
    print(f"resuming the run in {run_dir} with its settings")
    settings = dict(config["settings"], resume=str(run_dir))
    return settings, {name: RESUMED for name in settings}


@contextlib.contextmanager
def taken_up(settings: dict, sources: dict, chief: bool):
    """The settings and their sources of the run this command continues: --resume RUN_DIR's, or
    (several workers) the run the same command started before; as they are when there is none.
    The run stays locked against another training run (by the chief) while the block lasts, from
    before its state is read."""
    if settings["distribute"] == "multiworker" and not settings["resume"] and settings["run_name"]:
        # the same command again, on every worker, continues the run it started
        settings["resume"] = earlier_start(Path(settings["runs"], settings["run_name"]), settings)
    if not settings["resume"]:
        yield settings, sources
        return
    with (exclusive_lock(settings["resume"], "another training run") if chief
          else contextlib.nullcontext()):
        resumed, resumed_sources = resumed_settings(Path(settings["resume"]))
        # settings newer than the run keep the block's values
        sources = {**{name: "settings block" for name in settings}, **resumed_sources}
        if resumed["distribute"] == "multiworker" and settings["distribute"] != "multiworker":
            raise UserError(f"{settings['resume']} trains on several workers: continue it by "
                            "starting every worker again with the command that started it")
        yield {**settings, **resumed}, sources


@contextlib.contextmanager
def opened(settings: dict, sources: dict, card: dict, counts: dict, chief: bool):
    """The run folder: a resumed run's; the chief's, on a worker that is not the chief; or a new
    one (made only now: a failed build leaves no empty run folder), locked against another
    training run while the block lasts, with a config.json that says training.status "running"
    (what --resume reads)."""
    if settings["resume"] or not chief:
        yield Path(settings["resume"]) if settings["resume"] else Path(settings["runs"],
                                                                        settings["run_name"])
        return
    run_dir = new_run_dir(settings["runs"], settings["backbone"], settings["demo"],
                          settings["run_name"])
    with exclusive_lock(run_dir, "another training run"):
        write_config(run_dir, run_config(settings, sources, card, counts, {"status": "running"}))
        yield run_dir


def architecture_of(model_path: str | Path) -> dict:
    """--init_weights: the backbone, image size and resize its model was built with, from the
    config.json beside it (runs and weights/ have one), as settings; empty where there is none.
    Its backbone's ImageNet weights are not needed (weights None): the model's replace them all."""
    if not Path(model_path).is_file():
        return {}
    card = config_beside(model_path).get("model", {})
    found = {name: card[name] for name in ("backbone", "image_size", "resize") if name in card}
    return {**found, "weights": None} if found else {}


def earlier_start(run_dir: Path, settings: dict) -> str:
    """Several workers: the run folder when this command has run before and was stopped (the same
    command on every worker continues it), else "". Other settings than the run's are refused."""
    config_path = run_dir / CONFIG_JSON
    if not config_path.is_file():
        return ""
    started = json.loads(config_path.read_text())["settings"]
    changed = [f"{name}={started.get(name)!r} (now {value!r})" for name, value in settings.items()
               if name != "resume" and name in started and started[name] != value]
    if changed:
        raise UserError(f"{run_dir} holds a run started with other settings: {', '.join(changed)}; "
                        "continue it with the command that started it, or choose another run_name")
    return str(run_dir)


def drop_backup(run_dir: Path):
    """Once every deliverable is written, the backup has nothing left to give."""
    shutil.rmtree(run_dir / BACKUP, ignore_errors=True)


def print_finished(run_dir: Path, stopped_by: str, test_report: str, seconds: float,
                   test_metrics: dict, train_counts: dict):
    """What a finished run tells the user: why it stopped, the test report, a warning when a
    class is barely found, its files, and what to do next."""
    print(f"\nstopped by: {stopped_by}\ntest set:\n{test_report}")
    warning = weak_class_warning(test_metrics, train_counts)
    if warning:
        print(warning)
    print(f"done in {seconds:.0f} s. Everything is in {run_dir}/:")
    for path in sorted(run_dir.iterdir()):
        print(f"  {path.name}")
    print(f"next: python GAinfer.py --weights {run_dir / MODEL_KERAS} --images FOLDER")


def weak_class_warning(test_metrics: dict, train_counts: dict) -> str | None:
    """A line when a class's test F1 is below WEAK_F1: the model barely tells it from the other
    (a learning rate too high for a fine-tune, or one class far outnumbering the other)."""
    weak = {name: test_metrics[f"test_f1_{name}"] for name in train_counts
            if test_metrics.get(f"test_f1_{name}", 1) < WEAK_F1}
    if not weak:
        return None
    found = ", ".join(f"{name} {f1:.2f}" for name, f1 in weak.items())
    trained = " + ".join(f"{n} {name}" for name, n in train_counts.items())
    return (f"warning: test F1 {found}: this model barely finds that class. It trained on "
            f"{trained} images; check the balance of the classes and try a lower --lr")


def publish_model(run_dir: Path, weights_dir: Path):
    """Copies a demo run's model into weights_dir for GAinfer.py, unless a model that is not a
    demo model is there already (it is never replaced)."""
    config = weights_dir / CONFIG_JSON
    if (weights_dir / MODEL_KERAS).exists() and not (
            config.exists() and json.loads(config.read_text()).get("demo")):
        print(f"{weights_dir}/ holds a model that is not a demo model; left it alone "
              f"(demo model: {run_dir})")
        return
    weights_dir.mkdir(exist_ok=True)
    for name in MODEL_FILES:
        if (run_dir / name).exists():
            copy_atomic(run_dir / name, weights_dir / name)
    print(f"copied the demo model to {weights_dir}/ for GAinfer.py")
