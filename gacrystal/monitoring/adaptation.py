"""Adapting the classifier to one run's own texture, without labels (GAmonitor.py --adapt).

The monitor already assumes that its first `baseline_frames` good frames hold no PG: the alarm
learns its baseline from them. --adapt uses the same assumption once more. Their regions are
taken as CEX, beside the model's own training crops (CEX and PG), and a new decision is fitted on
the backbone's pooled features: a logistic regression on standardized features. The network's
features and its out-of-distribution check are kept. Only the last step, from features to
P(PG), is refitted: once a run, one pass over the training crops and a fit of about a second, and
no second pass over the frames.

    folders = fitting_folders(classifier, "images/split")      # checked before any frame
    adapter = BaselineAdapter(lambda: training_crops(classifier, *folders, 32), 10, 0.5, out)
    ready = adapter.take(seen, records)  # [] until 10 good frames are in; then all, relabelled

Why: a model trained on synthetic crops calls the probe's CEX texture PG in every frame (9-19
regions a frame of real CEX crops for the demo models, bench/RESULTS.md), and no cut-off on P(PG)
separates them from PG. Adapted, the same frames give none.

The guard. Adaptation is never on by default: asking for it states that the first frames are free
of PG, such as frames taken before the impurity can be there. Two checks on the data were tried,
and neither catches a baseline that holds PG (bench/RESULTS.md). The model's own validation PG
crops are still called PG after such a fit. And with one baseline frame at a time left out of the
fit, the PG in that frame is still called CEX, because the other frames teach it as CEX. So the fit
is written down: adaptation.json in the run's folder says which frames it was fitted on, how many
of their regions the network had called PG, and the validation PG crops' recall before and after.
The printed line and the page say so too.
"""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np

from gacrystal.errors import UserError
from gacrystal.images import CLASS_NAMES, label_and_confidence, list_images, predicted_labels
from gacrystal.monitoring.outputs import ADAPTATION_JSON, ADAPTATION_NPZ
from gacrystal.monitoring.perframe import POOLED as FEATURES

CROPS_PER_CLASS = 300  # training crops per class the decision is fitted against (seeded sample)
VALIDATION_PER_CLASS = 100  # validation crops per class the fit is checked on
SAMPLE_SEED = 42


@dataclasses.dataclass
class Adaptation:
    """A fitted decision: P(PG) = sigmoid(((features - mean) / scale) . weights + bias)."""
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    facts: dict  # what it was fitted on (adaptation.json)

    def p_pg(self, features: np.ndarray) -> np.ndarray:
        z = ((np.asarray(features, np.float64) - self.mean) / self.scale) @ self.weights
        return 1.0 / (1.0 + np.exp(-(z + self.bias)))

    def save(self, out: Path):
        from gacrystal.files import write_text_atomic
        np.savez(out / ADAPTATION_NPZ, mean=self.mean, scale=self.scale, weights=self.weights,
                 bias=np.float64(self.bias))
        write_text_atomic(out / ADAPTATION_JSON, json.dumps(self.facts, indent=2))

    @classmethod
    def load(cls, out: Path) -> "Adaptation | None":
        if not (out / ADAPTATION_NPZ).is_file():
            return None
        with np.load(out / ADAPTATION_NPZ) as saved:
            parts = {name: saved[name] for name in ("mean", "scale", "weights", "bias")}
        facts = json.loads((out / ADAPTATION_JSON).read_text(encoding="utf-8")) \
            if (out / ADAPTATION_JSON).is_file() else {}
        return cls(parts["mean"], parts["scale"], parts["weights"], float(parts["bias"]), facts)

    def describe(self) -> str:
        f, recall = self.facts, self.facts["validation_pg_recall"]
        checked = ("no validation crops to check it on" if recall["adapted"] is None else
                   f"validation PG crops called PG: {recall['adapted']:.0%} (the network: "
                   f"{recall['network']:.0%})")
        return (f"adapted to this run, fitted on {f['frames'][0]} to {f['frames'][-1]} "
                f"({f['regions']} regions, taken to be free of PG): the network had called "
                f"{f['network_pg']} of them PG, the adapted decision calls {f['adapted_pg']}; "
                f"{checked}")


@dataclasses.dataclass
class LabelledCrops:
    """Pooled features of a model's training (or validation) crops, with their classes."""
    features: np.ndarray
    classes: np.ndarray  # 0 CEX, 1 PG
    network_p_pg: np.ndarray  # the network's own P(PG) (calibrated), for comparison
    folder: str


def crops_folder(data: str, part: str) -> Path | None:
    """SPLIT/part (train or val) when it holds CEX/ and PG/; for part train, also DATA itself."""
    for folder in (Path(data, part), Path(data)) if part == "train" else (Path(data, part),):
        if all((folder / name).is_dir() for name in CLASS_NAMES):
            return folder
    return None


def labelled_crops(classifier, folder: Path, per_class: int, batch_size: int) -> LabelledCrops:
    """The pooled features of up to per_class crops of each class in folder (a seeded sample)."""
    paths, classes = [], []
    for index, name in enumerate(CLASS_NAMES):
        files = sorted(list_images(folder / name))
        random.Random(SAMPLE_SEED).shuffle(files)
        paths += files[:per_class]
        classes += [index] * len(files[:per_class])
    features = []
    records = classifier.label([str(p) for p in paths], batch_size,
                               on_batch=lambda i, p, f: features.append(
                                   classifier.pooled_features(f)))
    kept = [i for i, r in enumerate(records) if r["label"] != "ERROR"]
    return LabelledCrops(np.concatenate(features), np.array(classes)[kept],
                         np.array([records[i]["p_pg"] for i in kept]), str(folder))


def fitting_folders(classifier, data: str) -> tuple[Path, Path | None]:
    """The folders of crops the adapted decision is fitted against (train/) and checked on
    (val/, where there is one), from `data`: a split folder, or a folder with CEX/ and PG/ (the
    model's own training data). Checked before the first frame: a fit refused after ten frames
    would waste them."""
    if not (classifier.can_reject and classifier.feature_sizes):
        raise UserError(f"--adapt needs the backbone's features, which {classifier.path.name} "
                        "does not give (this project's models do: GAmain.py writes them)")
    return training_folders(data)


def training_folders(data: str) -> tuple[Path, Path | None]:
    """fitting_folders' check of `data` alone, which needs no model loaded (GAmonitor.py --demo
    runs it before it draws its frames)."""
    if not data:
        raise UserError("--adapt fits against the model's training crops, and its config.json "
                        "names none; pass --adapt_data SPLIT (the split it was trained on)")
    train = crops_folder(data, "train")
    if train is None:
        raise UserError(f"--adapt fits against the model's training crops: no CEX/ and PG/ "
                        f"folders in {data} or {data}/train; pass --adapt_data SPLIT (the "
                        "split the model was trained on)")
    return train, crops_folder(data, "val")


def training_crops(classifier, train: Path, val: Path | None,
                   batch_size: int) -> tuple[LabelledCrops, LabelledCrops | None]:
    """The features of the crops in fitting_folders: (training, validation or None)."""
    return (labelled_crops(classifier, train, CROPS_PER_CLASS, batch_size),
            val and labelled_crops(classifier, val, VALIDATION_PER_CLASS, batch_size))


def fit(train: LabelledCrops, baseline: np.ndarray, validation: LabelledCrops | None,
        frames: list[str], network_pg: int, threshold: float) -> Adaptation:
    """The decision fitted on the training crops and the baseline's regions (as CEX), each class
    weighted as a whole (the baseline's many regions must not drown the PG crops)."""
    from sklearn.linear_model import LogisticRegression
    x = np.concatenate([train.features, baseline]).astype(np.float64)
    y = np.concatenate([train.classes, np.zeros(len(baseline), int)])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")
    model.fit((x - mean) / scale, y)
    adaptation = Adaptation(mean, scale, model.coef_[0], float(model.intercept_[0]), {})
    recall = {"network": None, "adapted": None}
    if validation is not None and (validation.classes == 1).any():
        pg = validation.classes == 1
        recall = {"network": float(np.mean(predicted_labels(validation.network_p_pg[pg],
                                                            threshold))),
                  "adapted": float(np.mean(predicted_labels(
                      adaptation.p_pg(validation.features[pg]), threshold)))}
    adaptation.facts = {
        "method": "logistic regression on the backbone's pooled features: the model's training "
                  "crops (CEX, PG) and the baseline frames' regions (as CEX)",
        "assumption": "the baseline frames hold no PG",
        "frames": frames, "regions": int(len(baseline)), "network_pg": int(network_pg),
        "adapted_pg": int(np.sum(predicted_labels(adaptation.p_pg(baseline), threshold))),
        "training_crops": {"folder": train.folder, "CEX": int(np.sum(train.classes == 0)),
                           "PG": int(np.sum(train.classes == 1))},
        "validation_pg_recall": recall, "threshold": threshold}
    return adaptation


def relabel(records: list[dict], adaptation: Adaptation, threshold: float) -> list[dict]:
    """Records with the adapted P(PG) and label; UNKNOWN (unlike the training images, or out of
    focus) stays UNKNOWN. The features stay (the review's variety reads them; no table holds
    them)."""
    out = []
    for record in records:
        record = dict(record)
        features = record.get(FEATURES)
        if features is not None and record["label"] in CLASS_NAMES:
            p_pg = float(adaptation.p_pg(features[None])[0])
            label, confidence = label_and_confidence(p_pg, threshold)
            record.update(p_pg=p_pg, label=label, confidence=confidence)
        out.append(record)
    return out


class BaselineAdapter:
    """Holds a run's first frames until `frames_needed` good ones are in, fits the adaptation on
    their regions, then hands every frame on relabelled (see the module's docstring).

    fit_crops: called once, when the fit is due: (training, validation) LabelledCrops.
    """

    def __init__(self, fit_crops, frames_needed: int, threshold: float, out: Path,
                 adaptation: Adaptation | None = None):
        self.fit_crops, self.frames_needed, self.threshold = fit_crops, frames_needed, threshold
        self.out, self.adaptation = out, adaptation
        self.held: list[tuple] = []  # (SeenFrame, records) not yet handed on

    @property
    def waiting(self) -> str:
        """What the adapter still waits for, "" once fitted."""
        if self.adaptation is not None:
            return ""
        good = sum(frame.quality.good for frame, _ in self.held)
        return f"{good} of {self.frames_needed} good frames to adapt to"

    def take(self, seen: list, records: list[list[dict]]) -> list[tuple]:
        """(SeenFrame, records) pairs ready to be recorded, in order: none while the baseline is
        still being gathered, then the held frames and these, relabelled."""
        self.held += list(zip(seen, records))
        if self.adaptation is None:
            good = [(f, r) for f, r in self.held if f.quality.good][:self.frames_needed]
            if len(good) < self.frames_needed:
                return []
            self.adaptation = self.fitted(good)
            self.adaptation.save(self.out)
            print(self.adaptation.describe())
        ready, self.held = self.held, []
        return [(f, relabel(r, self.adaptation, self.threshold)) for f, r in ready]

    def fitted(self, good: list[tuple]) -> Adaptation:
        regions = [r for _, records in good for r in records if r.get(FEATURES) is not None
                   and r["label"] in CLASS_NAMES]
        if not regions:
            raise UserError(f"--adapt found no regions to adapt to in the first "
                            f"{self.frames_needed} good frames; monitor without --adapt")
        train, validation = self.fit_crops()
        return fit(train, np.stack([r[FEATURES] for r in regions]), validation,
                   [f.path.name for f, _ in good],
                   sum(r["label"] == CLASS_NAMES[1] for r in regions), self.threshold)

    def unrecorded(self) -> int:
        """Frames held, not recorded (a run that ended before the fit: they are done again)."""
        return len(self.held)

