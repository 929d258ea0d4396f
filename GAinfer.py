"""Labels every image in a folder as CEX or PG, with P(PG) and the confidence of the label.

    python GAinfer.py --weights runs/RUN/model.keras --images FOLDER --out labels.csv
    python GAinfer.py --weights weights/model.onnx --images FOLDER     # OpenVINO or ONNX Runtime
    python GAinfer.py --weights weights/GAweights.h5 --images FOLDER   # the original project's file
    python GAinfer.py --images FOLDER --embedding_map map/             # + embedding map (k-means)
    python GAinfer.py --images FOLDER --explain gradcam/               # + Grad-CAM overlays
    python GAinfer.py --images FOLDER --review review/                 # + review.html, corrections.csv
    python GAinfer.py --apply_corrections review/corrections.csv       # copy into images/corrected
    python GAinfer.py --weights georgia --images FOLDER                # the original's release
    python GAinfer.py --images FOLDER --out labels.csv --cluster local:4  # on Dask, 4 processes

Output per image: file, label (CEX or PG; UNKNOWN when the image is unlike the training images;
ERROR when the file cannot be read), P(PG), confidence = the probability of the class given (P(PG)
for PG, 1 - P(PG) for CEX), and ood_score (distance from the training images; above 1 is UNKNOWN,
see gacrystal/ood.py; --no-reject turns rejection off). The exit status is 1 when any file could
not be read, else 0.

In your own code (this script's name still works too: `from GAinfer import load_classifier`):

    from gacrystal import load_classifier
    classifier = load_classifier("weights/model.keras")
    records = classifier.label(["a.png", "b.png"])   # or PIL images, or a NumPy batch
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from gacrystal import ood
from gacrystal.classifier import (Classifier, check_weights, load_classifier,  # noqa: F401
                                  model_file, synthetic_only_note)
from gacrystal.cli import parse_settings, run_main
from gacrystal.crops_or_frames import frame_warning
from gacrystal.errors import UserError
from gacrystal.files import exclusive_lock, write_csv
from gacrystal.images import IMAGE_SUFFIXES, UNKNOWN, list_images  # noqa: F401
from gacrystal.labelling.folder import (COLUMNS, Labelled, draw_embedding_map, format_table,
                                        label_files, summary)
from gacrystal.labelling.review import (CORRECTIONS, REVIEW_PAGE, copy_corrected,
                                       read_corrections, write_review)
from gacrystal.onnx_io import check_engine

# --- settings (edit here, or override on the command line with the same names) ---
weights = "weights/model.keras"  # model file (.keras, .h5, .onnx), or georgia / georgia-onnx: the original's, downloaded once
images = "images/unlabelled"  # folder of images to label (PNG, JPEG, BMP, TIFF), or one image file
recursive = False  # also label the images in subfolders
out = ""  # CSV file to write the labels to (empty: print the table only)
batch_size = 16  # images per forward pass (16: as fast as 32 on a CPU, less memory)
engine = "auto"  # what runs an .onnx model: auto (OpenVINO where installed, else ONNX Runtime), onnxruntime, openvino, openvino-bf16 (faster where the CPU has bf16, and less exact)
threshold = 0.5  # P(PG) at or above this is labelled PG; between 0 and 1
embedding_map = ""  # folder to write the embedding map into (PNG and CSV); empty: no map (old flag: --map)
clusters = 4  # k of the map's k-means
overwrite = False  # replace an existing --out CSV or map files
reject = True  # label images unlike the training images UNKNOWN (models with an ood.npz beside them)
explain = ""  # folder to write a Grad-CAM overlay per image into (.keras/.h5 models); empty: none
trust_model = False  # allow a legacy .h5 model's Lambda layers (runs code from the file: trusted files only)
review = ""  # folder to write review.html and corrections.csv into; empty: none
apply_corrections = ""  # instead of labelling: copy the files of this corrections.csv into CORRECTED_DEST
corrected_dest = "images/corrected"  # Kaggle-style folder (cex/, pg/) that corrected files are copied into
cluster = ""  # label on Dask: local:N (N worker processes here) or tcp://HOST:8786 (a running scheduler); empty: in this process
shard_batches = 16  # with --cluster: batches per shard, the work a lost worker redoes and a second run skips
# --- end of settings


def check_settings(s: dict) -> list[Path]:
    """Checks the settings before the model is loaded; returns the image files."""
    folder = Path(s["images"])
    if folder.is_file() and folder.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{folder} is not a PNG, JPEG, BMP or TIFF image; pass --images with an "
                        "image or a folder of them")
    if not folder.exists():
        raise UserError(f"no image folder at images={folder}; put the images to label there or "
                        "pass --images FOLDER (or one image file)")
    files = [folder] if folder.is_file() else list_images(folder, s["recursive"])
    if not files:
        hint = "" if s["recursive"] else " (add --recursive to look in subfolders)"
        raise UserError(f"no PNG, JPEG, BMP or TIFF images in {folder}{hint}")
    if s["batch_size"] < 1:
        raise UserError(f"batch_size must be at least 1. Received: batch_size={s['batch_size']}")
    check_engine(s["engine"])
    if not 0 < s["threshold"] < 1:
        raise UserError(f"threshold must be between 0 and 1 (exclusive). "
                        f"Received: threshold={s['threshold']}")
    if s["cluster"]:
        check_cluster_settings(s)
    targets = [Path(s["out"])] if s["out"] else []
    if s["embedding_map"]:
        targets += [Path(s["embedding_map"], f"embedding_map.{suffix}") for suffix in ("png", "csv")]
    if s["review"]:
        targets += [Path(s["review"], name) for name in (REVIEW_PAGE, CORRECTIONS)]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not s["overwrite"]:
        verb = "exists" if len(existing) == 1 else "exist"
        raise UserError(f"{', '.join(existing)} already {verb}; choose another name or pass "
                        "--overwrite")
    if s["explain"]:
        if Path(s["weights"]).suffix.lower() == ".onnx" or s["weights"].endswith("-onnx"):
            raise UserError("--explain needs the gradients of a .keras or .h5 model (ONNX Runtime "
                            "gives none); pass --weights with the .keras file")
        clashes = [f for f in files if Path(s["explain"], f"{f.stem}_gradcam.png").exists()]
        if clashes and not s["overwrite"]:
            raise UserError(f"{s['explain']} already holds Grad-CAM overlays of these images "
                            f"(e.g. {clashes[0].stem}_gradcam.png); choose another folder or pass "
                            "--overwrite")
    check_weights(s["weights"])
    return files


def check_cluster_settings(s: dict):
    from gacrystal.cluster import check_cluster  # no Dask yet
    check_cluster(s["cluster"])
    if s["shard_batches"] < 1:
        raise UserError("shard_batches must be at least 1. "
                        f"Received: shard_batches={s['shard_batches']}")
    one_process = [f"--{name}" for name in ("explain", "embedding_map", "review") if s[name]]
    if one_process:
        raise UserError(f"--cluster labels only; {', '.join(one_process)} run in one process: "
                        "drop --cluster for them")


def print_model_notes(classifier: Classifier, reject: bool):
    """What the user should know about this model before reading its labels."""
    print(f"model: {classifier.path} on {classifier.engine}")
    if note := synthetic_only_note(classifier.card):
        print(note)
    if not classifier.card["preprocessing_inside"]:
        print(f"{classifier.path.name}: the original project's format (input preprocessed "
              "outside the model); applying its ResNet preprocessing and nearest resize")
    if reject and not classifier.can_reject:
        print("note: rejection of images unlike the training data is unavailable for this model "
              f"(no {ood.file_for(classifier.card)} beside it, or not this project's model); "
              f"every readable image gets CEX or PG. {ood.HOW_TO_ADD}")


def copy_corrected_files(corrections: Path, dest: Path) -> int:
    """Copies the files whose verdict gives them a class into dest/cex/ and dest/pg/."""
    chosen = read_corrections(corrections)
    with exclusive_lock(dest, "another copy of corrections"):
        counts = copy_corrected(chosen, dest)
    print(f"{len(chosen)} files with a class by {corrections}: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()) + f" (into {dest}/cex and /pg)")
    print(f"next: python GAsplit.py --source {dest} --dest images/split-corrected "
          "(or copy them into your dataset's cex/ and pg/ and split that)")
    return 1 if counts["missing"] else 0


def main(argv=None):
    s, _ = parse_settings(__file__, "Label microscope images as CEX or PG.", argv,
                          renamed={"map": "embedding_map"})
    if s["apply_corrections"]:
        return copy_corrected_files(Path(s["apply_corrections"]), Path(s["corrected_dest"]))
    files = check_settings(s)
    with contextlib.ExitStack() as locks:  # a second run writing the same files is refused
        for target in (s["out"], s["embedding_map"], s["explain"], s["review"]):
            if target:
                locks.enter_context(exclusive_lock(target, "another labelling run"))
        if s["cluster"]:  # the model loads on the workers only
            from gacrystal.labelling.shards import label_on_dask
            labelled = Labelled(label_on_dask(
                s["cluster"], [str(f) for f in files], model_file(s["weights"]), s["trust_model"],
                s["batch_size"], s["threshold"], s["reject"], s["shard_batches"],
                out=Path(s["out"]) if s["out"] else None, fresh=s["overwrite"],
                engine=s["engine"]))
        else:
            classifier = load_classifier(s["weights"], s["trust_model"], engine=s["engine"])
            print_model_notes(classifier, s["reject"])
            if warning := frame_warning(files, classifier.card):
                print(warning)
            labelled = label_files(
                classifier, [str(f) for f in files], s["batch_size"], s["threshold"], s["reject"],
                explain_dir=Path(s["explain"]) if s["explain"] else None,
                features=bool(s["embedding_map"]), thumbnails=bool(s["review"]))
        records = labelled.records
        print(format_table(records))
        print(summary(records, s["review"]))
        if s["out"]:
            write_csv(records, Path(s["out"]), COLUMNS)
            print(f"labels written to {s['out']}")
            if s["cluster"]:
                from gacrystal.labelling.shards import remove_parts
                remove_parts(Path(s["out"]))
        if s["explain"]:
            print(f"{len(labelled.overlays)} Grad-CAM overlays written to {s['explain']}/")
        if s["embedding_map"]:
            draw_embedding_map(records, labelled.features, Path(s["embedding_map"]), s["clusters"])
            print(f"embedding map written to {Path(s['embedding_map'], 'embedding_map.png')} and .csv")
        if s["review"]:
            page = write_review(records, labelled.thumbnails, Path(s["review"]), classifier)
            corrections = Path(s["review"], CORRECTIONS)
            print(f"review page written to {page}; write a verdict (right, wrong, CEX, PG or "
                  f"neither) where a label needs one in {corrections}, then: python GAinfer.py "
                  f"--apply_corrections {corrections}")
    failed = sum(r["label"] == "ERROR" for r in records)
    if failed:
        print(f"{failed} file(s) could not be read; see the ERROR rows", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
