"""Which model file a `weights` setting means (a file, a run folder where a script takes one kind
of file, or published weights by name: `--weights georgia`, `load_classifier("georgia")`), and
the published weights themselves.

The files come through Keras's standard download and cache (`keras.utils.get_file`, into
`~/.keras/models/`, or `$KERAS_HOME/models/`), are checked to be the expected kind of model
before anything loads them, and are only downloaded once. Offline, the error says where to
download the file by hand and where to put it.

To add weights, add a row to NAMED_WEIGHTS.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from gacrystal.errors import UserError

ORIGINAL_RELEASE = "https://github.com/KatherineMossDeveloper/The-Georgia-Project/releases/download/v1.5.2"


@dataclass(frozen=True)
class NamedWeights:
    """Where a published model file comes from, and what it must look like when it arrives."""
    url: str
    file_name: str  # its name in the cache
    description: str
    image_size: int  # the model's input side: (batch, size, size, 3)
    min_mb: float  # a file outside [min_mb, max_mb] is not the published one (e.g. truncated)
    max_mb: float
    sha256: str | None = None  # checked when known


NAMED_WEIGHTS = {
    # The original project's release (MIT): ResNet-101, 224 px, trained on the Kaggle crops.
    # Its input is ResNet-preprocessed outside the model; gacrystal.classifier handles that.
    "georgia": NamedWeights(f"{ORIGINAL_RELEASE}/GAweights.h5", "GAweights.h5",
                            "the original project's ResNet-101 (Keras 2 HDF5), release v1.5.2",
                            image_size=224, min_mb=50, max_mb=1000),
    "georgia-onnx": NamedWeights(f"{ORIGINAL_RELEASE}/GAweights.onnx", "GAweights.onnx",
                                 "the original project's ResNet-101 (ONNX), release v1.5.2",
                                 image_size=224, min_mb=50, max_mb=1000),
}


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Keras's cache: cache_dir, else $KERAS_HOME, else ~/.keras (read now, not at import)."""
    return Path(cache_dir or os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def cache_path(entry: NamedWeights, cache_dir: str | Path | None = None) -> Path:
    """Where Keras's get_file keeps the file: CACHE/models/FILE_NAME."""
    return cache_root(cache_dir) / "models" / entry.file_name


def by_hand(name: str, entry: NamedWeights, cache_dir=None) -> str:
    return (f"download {entry.url} by hand and put it at {cache_path(entry, cache_dir)} "
            f"(or anywhere, and pass --weights PATH_TO/{entry.file_name})")


def resolve(name: str, cache_dir: str | Path | None = None) -> Path:
    """The local file of named weights, downloaded into the cache on first use and checked."""
    entry = NAMED_WEIGHTS[name]
    path = cache_path(entry, cache_dir)
    if not path.is_file():
        path = download(name, entry, cache_dir)
    problem = what_is_wrong(path, entry)
    if problem:
        path.unlink(missing_ok=True)  # the next try downloads it again
        raise UserError(f"the download of --weights {name} is not {entry.description}: {problem}; "
                        f"it was removed. Try again, or {by_hand(name, entry, cache_dir)}")
    return path


def download(name: str, entry: NamedWeights, cache_dir=None) -> Path:
    """keras.utils.get_file into the cache; returns where the file is."""
    import keras
    print(f"downloading {entry.description} from {entry.url} ...")
    # get_file falls back to /tmp/.keras when the cache folder is not there (not writable) yet
    cache_root(cache_dir).mkdir(parents=True, exist_ok=True)
    try:
        return Path(keras.utils.get_file(entry.file_name, origin=entry.url, cache_subdir="models",
                                         cache_dir=str(cache_root(cache_dir)),
                                         file_hash=entry.sha256))
    except Exception as error:  # no network, refused, cut short: get_file removes the partial file
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise UserError(f"could not download --weights {name} ({reason}); "
                        + by_hand(name, entry, cache_dir)) from None


def what_is_wrong(path: Path, entry: NamedWeights) -> str:
    """Why the file is not the expected model (size, format, input shape), or "" when it is."""
    megabytes = path.stat().st_size / 2**20
    if not entry.min_mb <= megabytes <= entry.max_mb:
        return (f"{megabytes:.1f} MB where {entry.min_mb:g}-{entry.max_mb:g} MB were expected "
                "(truncated or another file)")
    try:
        side = onnx_input_side(path) if path.suffix == ".onnx" else h5_input_side(path)
    except Exception as error:  # a broken file raises whatever its parser raises
        return f"not a readable {path.suffix} model ({type(error).__name__})"
    if side != entry.image_size:
        return f"its input is {side} px where {entry.image_size} px was expected"
    return ""


def h5_input_side(path: Path) -> int | None:
    """The input side of a Keras full-model .h5 file, read from its config without loading it."""
    import h5py
    with h5py.File(path, "r") as f:
        config = f.attrs["model_config"]
    config = json.loads(config if isinstance(config, str) else config.decode())
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "InputLayer":
            shape = layer["config"].get("batch_input_shape") or layer["config"].get("batch_shape")
            return shape[1]
    return None


def onnx_input_side(path: Path) -> int | None:
    import onnx
    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return dims[1].dim_value or None if len(dims) == 4 else None


GET_WEIGHTS_HELP = (
    "train a model with `python GAmain.py` (or `python GAmain.py --demo`, which puts a small one "
    "into weights/), or use the original project's released model with --weights georgia "
    "(downloaded once)")


def folder_model(folder: Path, kind: str | None) -> Path | None:
    """The one rule for a folder (a run folder, weights/) as weights: where a script takes one
    kind of model file (GAquantize.py: kind ".onnx"), the folder stands for its model file of that
    kind, model{kind}; None where it has none, or where the script takes several kinds (which of
    the folder's files is meant is then the user's choice: check_weights names them)."""
    path = Path(folder, f"model{kind}") if kind else None
    return path if path is not None and path.is_file() else None


def check_weights(weights: str | Path, setting: str = "weights", kind: str | None = None):
    """Refuses weights that are neither a model file nor the name of published weights in
    NAMED_WEIGHTS, before anything is loaded or downloaded; the error
    names the setting that gave them. kind: the one kind of model file the script takes (see
    folder_model), or None (every kind)."""
    if Path(weights).is_dir():
        if folder_model(Path(weights), kind) is not None:
            return
        kinds = [".keras", ".onnx", ".h5"]  # the run folder's main file first
        models = [p for p in Path(weights).glob("model*.*") if p.suffix.lower() in kinds]
        found = [p.name for p in sorted(models, key=lambda p: (kinds.index(p.suffix.lower()),
                                                               p.name))]
        if kind:
            holds = f" (it holds {', '.join(found)})" if found else ""
            raise UserError(f"{setting}={weights} is a folder with no model{kind}{holds}; pass "
                            f"a run folder that has one, or a {kind} file")
        inside = (f"pass one of its model files, e.g. {Path(weights) / found[0]} "
                  f"({', '.join(found)})" if found else "it holds no model file")
        raise UserError(f"{setting}={weights} is a folder; {inside}")
    if not Path(weights).is_file() and str(weights) not in NAMED_WEIGHTS:
        raise UserError(f"no model file at {setting}={weights}; {GET_WEIGHTS_HELP}")


def model_file(weights: str | Path, setting: str = "weights", kind: str | None = None) -> Path:
    """The model file of a path, of a folder where the script takes one kind (folder_model), or
    of published weights named in NAMED_WEIGHTS (downloaded into Keras's
    cache on first use)."""
    check_weights(weights, setting, kind)
    path = Path(weights)
    if path.is_dir():
        return folder_model(path, kind)
    return path if path.is_file() else resolve(str(weights))
