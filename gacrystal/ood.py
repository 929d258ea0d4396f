"""Out-of-distribution rejection: is this a crystal image like the training images?

A sigmoid always answers: the original labelled a cat photo "PG, 90.27%". Here every image is
compared with the training images in the network's own feature space, at several depths: for the
preprocessed input, the stem and each backbone stage, every channel's spatial mean and standard
deviation (gacrystal.model.scoring_model). Pooled last-stage features alone do not work here: measured on
the demo model, flat colours, noise and checkerboards scored *closer* to the training images than
held-out crystals, while the low stages put every one of them far away.

Per stage, in units where training images score about 1:

- within the training images' main directions (PCA): the Mahalanobis distance to the nearest
  class mean under a shared, shrunk covariance (class-conditional Gaussians, Lee et al. 2018),
  divided by the number of directions;
- outside them: the squared residual, divided by its mean over the training images.

Each stage's score is divided by its 99th percentile over images the statistics were not fitted
on: the validation images, the same images as another probe, focus or lighting would show them
(`imaging_variety`: blur, gamma, contrast, brightness, noise, zoom; a model trained on synthetic
crops otherwise rejects real crops for looking different in just these ways), and each training
image scored by statistics fitted on the other training folds (the validation split alone holds
few distinct crops: measured on a small synthetic set, 73 validation images let only 95% of
unseen crystal images pass). The largest
scaled stage score, divided by the 99th percentile of that over the same images, is the image's
`ood_score`. Above 1 means "not like the training data" and the label is UNKNOWN.

The statistics are fitted on the training images each turned to a random one of the eight
rotations and mirrors (`turned_batches`): a crystal in a stirred slurry has no preferred
orientation and the real PG crops come in all eight, but neither the generator's drawing nor the
network is indifferent to it (measured on the seed-7 demo model: one real PG crop scored 0.80 to
1.51 across its eight orientations, rejected in four; fitted on turned images, at most 0.98).
The statistics are NumPy arrays in an .npz file (no pickle) beside the model; an int8 copy of the
model has its own, fitted on its own features (gacrystal.quantize).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gacrystal.files import OOD_INT8_NPZ, OOD_NPZ
from gacrystal.images import dihedral

FIT_IMAGES = 2000  # training images the statistics are fitted on (at most)
PASS_RATE = 0.99  # share of validation images that pass
MAX_DIRECTIONS = 32
CALIBRATION_FOLDS = 5
FIT_SEED = 0  # draws the FIT_IMAGES when a training split has more
VARIETY_SEED = 1  # draws the imaging variations of the calibration images
TURN_SEED = 2  # draws the orientation of each image the statistics are fitted on
METHOD = "multi-stage Mahalanobis"
# Said wherever a model cannot reject: how a model without statistics gets them.
HOW_TO_ADD = ("GAcalibrate.py fits them from a folder of labelled crops: "
              "python GAcalibrate.py --weights MODEL --images FOLDER")


def fit_stage(features: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Fits one stage's feature statistics on the training images."""
    from sklearn.covariance import LedoitWolf
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels).astype(int)
    classes = np.unique(labels)
    mean = features.mean(axis=0)
    centred = features - mean
    # Five samples per direction at least, or unseen images look foreign.
    k = int(max(1, min(MAX_DIRECTIONS, len(features) // 5, features.shape[1])))
    components = np.linalg.svd(centred, full_matrices=False)[2][:k]
    z = centred @ components.T
    class_means = np.stack([z[labels == c].mean(axis=0) for c in classes])
    within = z - class_means[np.searchsorted(classes, labels)]
    residual = np.sum(centred ** 2, axis=1) - np.sum(z ** 2, axis=1)
    total = np.sum(centred ** 2, axis=1).mean()
    # With as many directions as features, the residual is rounding noise: leave it out.
    scale = np.inf if k >= features.shape[1] else max(residual.mean(), 1e-9 * total)
    return {"mean": mean, "components": components, "class_means": class_means,
            "precision": LedoitWolf().fit(within).precision_,
            "residual_scale": np.array(scale)}


def stage_scores(stage: dict, features: np.ndarray) -> np.ndarray:
    """One stage's distance of each feature vector from the training images (about 1 for them)."""
    centred = np.asarray(features, np.float64) - stage["mean"]
    z = centred @ stage["components"].T
    diffs = z[:, None, :] - stage["class_means"][None]  # (n, classes, k)
    mahalanobis = np.einsum("nck,kl,ncl->nc", diffs, stage["precision"], diffs).min(axis=1)
    residual = np.maximum(np.sum(centred ** 2, axis=1) - np.sum(z ** 2, axis=1), 0)
    return mahalanobis / len(stage["components"]) + residual / stage["residual_scale"]


def fitting_indices(count: int) -> np.ndarray:
    """Which of `count` training images the statistics are fitted on: up to FIT_IMAGES, drawn
    with FIT_SEED, in file order (the same images for every model of one split)."""
    return np.sort(np.random.default_rng(FIT_SEED).permutation(count)[:FIT_IMAGES])


def stage_sizes(stages: list[dict]) -> list[int]:
    """Each stage's share of the features, as the statistics were fitted."""
    return [len(stage["mean"]) for stage in stages]


def split_stages(features: np.ndarray, sizes) -> list[np.ndarray]:
    return np.split(np.asarray(features), np.cumsum(sizes)[:-1], axis=1)


def calibration_scores(stage, train, train_labels, val, folds=CALIBRATION_FOLDS) -> np.ndarray:
    """One stage's scores of images its statistics were not fitted on: the validation images
    (scored by `stage`, fitted on all training images) and each training image (statistics of the other
    folds). Folds are contiguous, so copies of one crop, which carry consecutive numbers, mostly
    stay in one fold. More, and more varied, images than the validation set alone."""
    parts = [stage_scores(stage, val)]
    for held in np.array_split(np.arange(len(train)), folds):
        rest = np.setdiff1d(np.arange(len(train)), held)
        if len(np.unique(train_labels[rest])) == len(np.unique(train_labels)):
            parts.append(stage_scores(fit_stage(train[rest], train_labels[rest]), train[held]))
    return np.concatenate(parts)


def fit(train_features, train_labels, val_features, sizes, pass_rate=PASS_RATE) -> list[dict]:
    """Fits every stage on the training images and calibrates it so that `pass_rate` of the
    images it was not fitted on pass (see calibration_scores)."""
    train_labels = np.asarray(train_labels).astype(int)
    stages, calibration = [], []
    for train, val in zip(split_stages(train_features, sizes), split_stages(val_features, sizes)):
        stage = fit_stage(train, train_labels)
        unseen = calibration_scores(stage, train, train_labels, val)
        stage["scale"] = np.array(np.quantile(unseen, pass_rate))
        stages.append(stage)
        calibration.append(unseen / stage["scale"])
    threshold = np.quantile(np.max(calibration, axis=0), pass_rate)
    for stage in stages:
        stage["scale"] = stage["scale"] * threshold
    return stages


def imaging_variety(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The images as another probe, focus or lighting would show them, one random draw per image:
    blur, gamma, contrast, brightness, sensor noise and a zoom of up to 20%. None of these
    changes what the crystals are, so the check must not reject an image for them.

    Args:
        pixels: RGB 0-255 images at the model's size, (n, size, size, 3).
    """
    from PIL import Image
    from scipy.ndimage import gaussian_filter
    varied = []
    for image in np.asarray(pixels, np.float32):
        size = image.shape[0]
        zoomed = round(size * rng.uniform(0.83, 1.2))
        picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).resize(
            (zoomed, zoomed), Image.BILINEAR)
        offset = abs(zoomed - size) // 2  # crop the centre, or reflect-pad around it
        image = np.asarray(picture, np.float32)
        image = image[offset:offset + size, offset:offset + size] if zoomed >= size else np.pad(
            image, ((offset, size - zoomed - offset), (offset, size - zoomed - offset), (0, 0)),
            mode="reflect")
        image = gaussian_filter(image, (rng.uniform(0, 1.5), rng.uniform(0, 1.5), 0))
        image = 255 * (np.clip(image, 0, 255) / 255) ** rng.uniform(0.7, 1.4)
        image = (image - image.mean()) * rng.uniform(0.75, 1.25) + image.mean() + rng.uniform(-20, 20)
        image = image + rng.normal(0, rng.uniform(0, 6), image.shape[:2])[..., None]
        varied.append(np.clip(image, 0, 255))
    return np.stack(varied).astype(np.float32) if varied else np.asarray(pixels, np.float32)


def fit_statistics(features_of, train_paths: list, train_labels, val_paths: list,
                   sizes: list[int]) -> tuple[list[dict], dict]:
    """The one recipe for a model's out-of-distribution statistics, whoever fits them (training,
    GAquantize for an int8 copy, GAcalibrate): fitted on up to FIT_IMAGES un-augmented training
    images, each turned to a random orientation (`turned_batches`), calibrated on the validation
    images, on the same images under `imaging_variety`, and on held-out training folds.

    Args:
        features_of: (paths, variation) -> the model's OOD features of those images,
            (n, sum(sizes)); `variation` is None (the images as they are) or a function of an
            iterable of pixel batches that yields them changed (`turned_batches`,
            `varied_batches`), to apply to the images' batches in `paths` order.
        sizes: each stage's share of the features (gacrystal.model.scoring_model).

    Returns:
        (stages, summary): the statistics (for `save`) and figures for config.json.
    """
    chosen = fitting_indices(len(train_paths))
    train_features = features_of([train_paths[i] for i in chosen], turned_batches)
    varied_features = features_of(list(val_paths), varied_batches)
    val_features = features_of(list(val_paths), None)  # last: training reuses this pass's P(PG)
    stages = fit(train_features, np.asarray(train_labels)[chosen],
                 np.concatenate([val_features, varied_features]), sizes)
    summary = {"threshold": 1.0, "method": METHOD, "fit_images": len(chosen),
               "fit_orientations": "random of 8",
               "val_pass_rate": float(np.mean(scores(stages, val_features) <= 1)),
               "varied_val_pass_rate": float(np.mean(scores(stages, varied_features) <= 1)),
               "stage_scales": [float(stage["scale"]) for stage in stages]}
    return stages, summary


def varied_batches(batches):
    """imaging_variety over a sequence of pixel batches, with the one seed (VARIETY_SEED)."""
    rng = np.random.default_rng(VARIETY_SEED)
    for pixels in batches:
        yield imaging_variety(pixels, rng)


def turned_batches(batches):
    """Each image of a sequence of pixel batches turned to one of its eight rotations and mirrors
    at random, with the one seed (TURN_SEED)."""
    rng = np.random.default_rng(TURN_SEED)
    for pixels in batches:
        yield np.stack([dihedral(image, int(rng.integers(8))) for image in pixels])


def scores(stages: list[dict], features: np.ndarray) -> np.ndarray:
    """ood_score of each image: the largest of its scaled stage scores; above 1 is rejected."""
    return np.max([stage_scores(stage, part) / float(stage["scale"])
                   for stage, part in zip(stages, split_stages(features, stage_sizes(stages)))],
                  axis=0)


def save(stages: list[dict], path: str | Path):
    from gacrystal.files import atomic_path
    arrays = {f"stage{i}_{k}": np.asarray(v, np.float32)
              for i, stage in enumerate(stages) for k, v in stage.items()}
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as f:
            np.savez(f, **arrays)


def sidecar_path(model_path: Path) -> Path:
    """Where statistics fitted after the fact for one model file live (GAcalibrate.py):
    MODEL_STEM.ood.npz, so that several models can share a folder."""
    return Path(model_path).with_name(f"{Path(model_path).stem}.ood.npz")


def file_for(card: dict) -> str:
    """The statistics' file name beside a model with this model card."""
    return OOD_INT8_NPZ if "quantized" in card else OOD_NPZ


def load(path: str | Path) -> list[dict] | None:
    """The statistics saved beside a model, or None when there are none."""
    path = Path(path)
    if not path.is_file():
        return None
    stages: dict[int, dict] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            index, name = key.removeprefix("stage").split("_", 1)
            stages.setdefault(int(index), {})[name] = data[key].astype(np.float64)
    return [stages[i] for i in sorted(stages)]
