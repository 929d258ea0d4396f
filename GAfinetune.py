"""Fine-tunes a model on your verdicts of a monitored run: a model that knows your probe.

    python GAfinetune.py --run monitor              # the verdicts in monitor/corrections.csv
    python GAfinetune.py --run monitor --corrections ~/Downloads/corrections.csv   # the page's file
    python GAmonitor.py --frames NEW_FRAMES --weights runs/RUN/model.keras --out monitor-2

Mark regions on the run's monitor.html first (one key each: C, P or N), and save them. This takes
the regions you gave a class (neither is left out), cuts them from the run's frames, adds a seeded
sample of the model's own training crops so that it forgets nothing, holds out a share of the
frames (and crops) to check the new model on, no frame on both sides, retrains the model's head on
the backbone's pooled features (gacrystal/training/finetune.py: the backbone is kept) and writes a
new run folder: model.keras, model.h5, model.onnx, ood.npz, and config.json, whose card says what
it was fine-tuned on. Regions you did not look at are left out, unless --unreviewed predicted
takes the model's own labels of them as truth. Minutes on two cores, most of it the one pass of
the crops through the network and the ONNX export.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gacrystal.cli import parse_settings, run_main
from gacrystal.errors import UserError

# --- settings (edit here, or override on the command line with the same names) ---
run = "monitor"  # the monitored run's folder (GAmonitor.py's --out): its frames, regions and corrections.csv
corrections = ""  # your verdicts: the file monitor.html saved; empty: RUN/corrections.csv
weights = ""  # the model to fine-tune (its .keras file or run folder); empty: the one that monitored the run
unreviewed = "leave_out"  # regions without a verdict: leave_out, or predicted (the model's labels taken as truth)
training_crops = 300  # crops of each class from the model's own training split kept in the mix; 0: none
data = ""  # that split; empty: the one the model's config.json names
epochs = 30  # passes over the examples (the head only: well under a second each)
learning_rate = 0.001  # Adam's
validation_share = 0.2  # share of the frames (and of the training crops) held out to check the model on
batch_size = 32  # crops per forward pass
seed = 42  # the sample of training crops, the held-out frames and the head's training
runs = "runs"  # the new run folder goes here
export_onnx = True  # also write model.onnx (what GAmonitor.py runs fastest)
# --- end of settings

UNREVIEWED = ("leave_out", "predicted")
DEMO_RUN = "monitor-demo"  # where GAmonitor.py --demo writes its run


def check_settings(s: dict) -> tuple[Path, Path | None, Path]:
    """Checks the settings; returns the run's folder, the verdicts file and the .keras model."""
    from gacrystal.classifier import model_file
    from gacrystal.monitoring.corrections import CORRECTIONS, monitored_run
    if s["unreviewed"] not in UNREVIEWED:
        raise UserError(f"unreviewed must be {' or '.join(UNREVIEWED)}. "
                        f"Received: unreviewed={s['unreviewed']}")
    for name in ("epochs", "batch_size", "seed"):
        if s[name] < 1:
            raise UserError(f"{name} must be at least 1. Received: {name}={s[name]}")
    if s["training_crops"] < 0 or not 0 <= s["validation_share"] < 1 or s["learning_rate"] <= 0:
        raise UserError("training_crops must be 0 or more, validation_share in [0, 1) and "
                        f"learning_rate above 0. Received: training_crops={s['training_crops']}, "
                        f"validation_share={s['validation_share']}, "
                        f"learning_rate={s['learning_rate']}")
    run_dir = Path(s["run"])
    if not run_dir.is_dir() and Path(DEMO_RUN, "monitor.json").is_file():
        raise UserError(f"no monitored run in run={run_dir}; `GAmonitor.py --demo` wrote its run "
                        f"into {DEMO_RUN}: python GAfinetune.py --run {DEMO_RUN}")
    state = monitored_run(run_dir, "run")
    corrections = Path(s["corrections"]) if s["corrections"] else run_dir / CORRECTIONS
    if not s["corrections"] and not corrections.is_file():
        raise UserError(f"no verdicts in {corrections}: open {run_dir / 'monitor.html'}, mark "
                        "regions (C, P or N) and save, then pass --corrections SAVED.csv")
    model = Path(s["weights"] or state["weights"])
    if model.suffix.lower() in (".onnx", ".h5") and model.with_suffix(".keras").is_file():
        model = model.with_suffix(".keras")  # the run's Keras file: the one that can be trained
    model = model_file(model, "weights", ".keras" if model.is_dir() else None)
    if model.suffix.lower() != ".keras":
        raise UserError(f"fine-tuning needs the model's .keras file (beside {model.name} there is "
                        "none); pass --weights MODEL.keras")
    return run_dir, corrections, model


def region_features(classifier, regions: list, batch_size: int):
    """(pooled features, classes, frames) of the reviewed regions."""
    from PIL import Image
    from gacrystal.images import CLASS_NAMES
    pooled = []
    classifier.label([Image.fromarray(crop) for crop, *_ in regions], batch_size,
                     on_batch=lambda i, p, f: pooled.append(classifier.pooled_features(f)))
    return (np.concatenate(pooled), [CLASS_NAMES.index(c) for _, c, _, _ in regions],
            [frame for _, _, frame, _ in regions])


def own_training_crops(classifier, model: Path, data: str, per_class: int, batch_size: int):
    """(pooled features, classes, groups) of a seeded sample of the model's training crops, or
    empty ones with per_class 0."""
    from gacrystal.classifier import training_data_of
    from gacrystal.monitoring.adaptation import crops_folder, labelled_crops
    if not per_class:
        return np.zeros((0, 1), np.float32), [], []
    split = data or training_data_of(model)
    folder = split and crops_folder(split, "train")
    if not folder:
        raise UserError(f"the model's training crops are not at data={split or '(none named)'}: "
                        "pass --data SPLIT (the split it was trained on), or --training_crops 0 "
                        "to fine-tune on your verdicts alone (it may then forget)")
    crops = labelled_crops(classifier, folder, per_class, batch_size)
    return crops.features, crops.classes, [f"crop {i}" for i in range(len(crops.classes))]


def describe(shares: dict) -> str:
    return "; ".join(f"{source}: " + ", ".join(
        f"{name} {value:.0%}" for name, value in by_class.items() if value is not None)
        for source, by_class in shares.items()) or "nothing held out"


def main(argv=None):
    s, _ = parse_settings(__file__, __doc__.splitlines()[0], argv)
    run_dir, corrections, model_path = check_settings(s)
    started = time.time()
    from gacrystal.classifier import load_classifier
    from gacrystal.images import DECISION_THRESHOLD
    from gacrystal.monitoring.corrections import reviewed_regions
    from gacrystal.training import finetune
    from gacrystal.training.runs import new_run_dir

    regions, left = reviewed_regions(run_dir, corrections, s["unreviewed"] == "predicted")
    verdicts = sum(bool(verdict) for *_, verdict in regions)
    if not verdicts and left["frames missing"]:
        raise UserError(f"the frames of {run_dir} are gone ({left['frames missing']} regions "
                        "whose frame cannot be read, at the path its monitor.json names): put "
                        "them back where they were monitored")
    if not verdicts:
        raise UserError(f"{corrections} gives no region a class: mark regions on "
                        f"{run_dir / 'monitor.html'} (C, P or N) and save them")
    print(f"{len(regions)} regions from {run_dir} ({verdicts} with your verdict; "
          f"{left['left out']} left out, {left['frames missing']} whose frame is gone)")
    classifier = load_classifier(model_path, features=True)
    finetune.check_has_head(classifier.model, model_path)
    examples = finetune.Examples.stacked(
        [region_features(classifier, regions, s["batch_size"]),
         own_training_crops(classifier, model_path, s["data"], s["training_crops"],
                            s["batch_size"])], ["your regions", "training crops"])
    train, held_out = finetune.split_by_group(examples, s["validation_share"], s["seed"])
    head = finetune.head_of(classifier.model)
    before = finetune.agreement(head, held_out, DECISION_THRESHOLD)
    print(f"fine-tuning the head on {len(train)} examples {train.counts()}, "
          f"{len(held_out)} held out ...")
    history = finetune.fit_head(classifier.model, train, s["epochs"], s["learning_rate"],
                                s["seed"])
    after = finetune.agreement(head, held_out, DECISION_THRESHOLD)
    print(f"held out, right before: {describe(before)}\nheld out, right after:  {describe(after)}")
    out = new_run_dir(s["runs"], f"{classifier.card.get('backbone', 'model')}_finetuned")
    facts = {"from": str(model_path), "run": str(run_dir), "corrections": str(corrections),
             "verdicts": verdicts, "unreviewed": s["unreviewed"], "examples": train.counts(),
             "held_out": held_out.counts(), "held_out_right_before": before,
             "held_out_right_after": after, "epochs": s["epochs"],
             "learning_rate": s["learning_rate"], "final_loss": history["loss"][-1],
             "method": "the head retrained on the backbone's pooled features; backbone unchanged"}
    finetune.write_finetuned(classifier.model, model_path, out, facts, s["export_onnx"])
    print(f"\nwrote {out} in {time.time() - started:.0f} s. Next: monitor new frames with it:\n"
          f"  python GAmonitor.py --frames NEW_FRAMES --weights {out / 'model.keras'} "
          f"--out {run_dir}-finetuned")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
