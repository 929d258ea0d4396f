"""Fine-tuning a model on a reviewer's verdicts (GAfinetune.py): the head retrained on the
backbone's pooled features, the backbone kept as it is.

    examples = Examples.stacked([reviewed, training_crops], ["verdicts", "training crops"])
    history = fit_head(model, examples, epochs=30, learning_rate=1e-3, seed=42)
    model.predict(...)   # the whole model, with its new head; save it as any other

Why only the head: a plant's reviewer gives 100-200 verdicts, far too few to move a ResNet's
23 million weights without forgetting, and the backbone's pooled features already tell the
probe's looks apart (the review's clusters are made of them). Retraining the original project's
head (fc512, its BatchNorm, fc256, p_pg: 1.2 million weights) on the features of the verdicts and
of a sample of the model's own training crops takes seconds, once each crop has been through the
network once. The backbone is unchanged, so the out-of-distribution statistics stay valid as they
are, and the model written is an ordinary model of this project: every script takes it.

Each example is weighted so that its source (the verdicts; the training crops) and, within a
source, its class weigh alike: a few PG verdicts are not drowned by hundreds of CEX verdicts, and
the verdicts are not drowned by the training crops.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


@dataclasses.dataclass
class Examples:
    """Pooled features with their classes (0 CEX, 1 PG), the source each came from, and the
    group it must stay with in a split (the frame a region was cut from; the crop's file)."""
    features: np.ndarray
    classes: np.ndarray
    sources: np.ndarray
    groups: np.ndarray

    @classmethod
    def stacked(cls, parts: list[tuple[np.ndarray, np.ndarray, list[str]]],
                sources: list[str]) -> "Examples":
        """Examples from (features, classes, groups) parts, each from the source of that name."""
        parts = [(f, c, g, s) for (f, c, g), s in zip(parts, sources) if len(c)]
        return cls(np.concatenate([np.asarray(f, np.float32) for f, *_ in parts]),
                   np.concatenate([np.asarray(c, int) for _, c, *_ in parts]),
                   np.concatenate([[s] * len(c) for _, c, _, s in parts]),
                   np.concatenate([np.asarray(g, object) for *_, g, _ in parts]))

    def __len__(self) -> int:
        return len(self.classes)

    def subset(self, mask: np.ndarray) -> "Examples":
        return Examples(self.features[mask], self.classes[mask], self.sources[mask],
                        self.groups[mask])

    def weights(self) -> np.ndarray:
        """Each source, and each class within it, weighing alike; the mean weight 1."""
        weights = np.zeros(len(self), np.float64)
        present = sorted(set(self.sources))
        for source in present:
            in_source = self.sources == source
            classes = sorted(set(self.classes[in_source]))
            for c in classes:
                members = in_source & (self.classes == c)
                weights[members] = 1.0 / (len(present) * len(classes) * members.sum())
        return weights * len(self) / weights.sum()

    def counts(self) -> dict:
        """{source: {"CEX": n, "PG": n}}"""
        return {str(source): {"CEX": int(np.sum((self.sources == source) & (self.classes == 0))),
                         "PG": int(np.sum((self.sources == source) & (self.classes == 1)))}
                for source in sorted(set(self.sources))}


def split_by_group(examples: Examples, share: float, seed: int) -> tuple[Examples, Examples]:
    """(training, validation): a seeded `share` of each source's groups held out whole, so that no
    frame (or crop) gives examples to both."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(examples), bool)
    for source in sorted(set(examples.sources)):
        groups = sorted(set(examples.groups[examples.sources == source]))
        count = int(round(share * len(groups)))
        if count and len(groups) > 1:
            chosen = set(rng.choice(np.array(groups, object), size=min(count, len(groups) - 1),
                                    replace=False))
            held |= (examples.sources == source) & np.isin(examples.groups, list(chosen))
    return examples.subset(~held), examples.subset(held)


def head_of(model):
    """The model's head as a model of its own on the pooled features, sharing its layers (so
    training it trains the whole model's head): the layers after the global average pooling."""
    import keras
    from gacrystal.model import pooling_layer
    pooling = pooling_layer(model)
    inputs = keras.Input((int(pooling.output.shape[-1]),), name="pooled")
    x = inputs
    for layer in model.layers[model.layers.index(pooling) + 1:]:
        x = layer(x)
    return keras.Model(inputs, x, name="head")


def check_has_head(model, path) -> None:
    """Refuses a model whose head is not the one build_classifier makes (a nested backbone, then
    global average pooling and the dense layers)."""
    import keras
    from gacrystal.errors import UserError
    from gacrystal.model import pooling_layer
    nested = any(isinstance(layer, keras.Model) for layer in model.layers)
    try:
        pooling_layer(model)
    except StopIteration:
        nested = False
    if not nested:
        raise UserError(f"{path} is not a model this project trained (a ResNet backbone, then "
                        "the head): fine-tuning retrains that head; train one with GAmain.py")


def predict_head(head, features: np.ndarray) -> np.ndarray:
    return np.asarray(head.predict(np.asarray(features, np.float32), verbose=0,
                                   batch_size=256)).reshape(-1)


def fit_head(model, train: Examples, epochs: int, learning_rate: float, seed: int,
             batch_size: int = 64) -> dict:
    """Retrains the model's head (in place) on the examples' features, weighted by
    Examples.weights. Returns the loss of each epoch."""
    import keras
    keras.utils.set_random_seed(seed)
    head = head_of(model)
    for layer in head.layers:
        layer.trainable = True
    head.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    history = head.fit(train.features, train.classes.astype(np.float32),
                       sample_weight=train.weights(), epochs=epochs, batch_size=batch_size,
                       shuffle=True, verbose=0)
    return {"loss": [float(v) for v in history.history["loss"]]}


def agreement(head, examples: Examples, threshold: float) -> dict:
    """{source: {"CEX": share called CEX, "PG": share called PG}} of the examples (None where a
    source has none of a class): how the head does on them."""
    from gacrystal.images import predicted_labels
    if not len(examples):
        return {}
    called = predicted_labels(predict_head(head, examples.features), threshold)
    shares = {}
    for source in sorted(set(examples.sources)):
        shares[str(source)] = {}
        for index, name in enumerate(("CEX", "PG")):
            members = (examples.sources == source) & (examples.classes == index)
            shares[str(source)][name] = (float(np.mean(called[members] == index))
                                    if members.any() else None)
    return shares


def write_finetuned(model, source: Path, run_dir: Path, facts: dict, export_onnx: bool) -> list:
    """The fine-tuned model into run_dir as a training run writes it (model.keras, .h5, .onnx),
    with the source model's config.json (its card saying what it was fine-tuned on: facts) and
    its out-of-distribution statistics (the backbone is unchanged, so they hold as they are).
    The source's calibration is dropped: it was fitted to the old head. Returns the files."""
    import json
    import shutil
    from gacrystal import ood
    from gacrystal.classifier import config_beside
    from gacrystal.files import CONFIG_JSON, write_text_atomic
    from gacrystal.model import scoring_model
    from gacrystal.training.deliverables import save_models
    config = config_beside(source)
    card = dict(config.get("model", {}))
    card.pop("calibration", None)
    card["trained_on"] = f"{card.get('trained_on', 'labelled images')}, then reviewed regions"
    card["fine_tuned"] = facts
    scorer, sizes = scoring_model(model)
    card["feature_sizes"] = sizes
    files = save_models(model, scorer, run_dir, card, export_onnx)
    statistics = source.parent / ood.file_for(card)
    if statistics.is_file():
        shutil.copyfile(statistics, run_dir / statistics.name)
        files.append(run_dir / statistics.name)
    config.pop("test", None)  # the old head's figures; the held-out ones are in facts
    config.update(model=card, files=[f.name for f in files],
                  training={"status": "finished", "fine_tuned": "GAfinetune.py"})
    write_text_atomic(run_dir / CONFIG_JSON, json.dumps(config, indent=2, default=str))
    return files
