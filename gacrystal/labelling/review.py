"""Reviewing and correcting labels: a self-contained review.html of a labelled folder, a
corrections.csv to edit (gacrystal.corrections: its verdicts), and copying the corrected files
into a Kaggle-style cex/ pg/ folder (copies, never moves) so that they can join the next split.
"""
from __future__ import annotations

from html import escape
from pathlib import Path

from gacrystal.corrections import CORRECTIONS, place, read_verdicts, training_class
from gacrystal.errors import UserError
from gacrystal.files import write_csv, write_text_atomic
from gacrystal.images import CLASS_NAMES, UNKNOWN

CORRECTION_COLUMNS = ["file", "predicted", "p_pg", "verdict"]
REVIEW_PAGE = "review.html"  # beside CORRECTIONS in the review folder
GROUPS = (*CLASS_NAMES, UNKNOWN, "ERROR")
STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:1.6em}
.grid{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;padding:5px;width:270px;
font-size:.78em}.card img{width:128px;height:128px;image-rendering:pixelated}
.name{word-break:break-all;font-weight:600}"""


def review_order(records: list[dict]) -> dict[str, list[int]]:
    """Record indices by label group, least certain first (UNKNOWN: most foreign first)."""
    groups = {name: [] for name in GROUPS}
    for i, r in enumerate(records):
        groups[r["label"]].append(i)
    for name in CLASS_NAMES:
        groups[name].sort(key=lambda i: records[i]["confidence"])
    groups[UNKNOWN].sort(key=lambda i: -(records[i]["ood_score"] or 0))
    return groups


def card_html(record: dict, thumbnail: tuple | None) -> str:
    images = ""
    if thumbnail is not None:
        image, heat = thumbnail
        images = f'<img alt="image" src="{image}">' + (
            f'<img alt="Grad-CAM" src="{heat}">' if heat else "")
    if record["label"] == "ERROR":
        facts = f"cannot be read: {escape(record['error'])}"
    else:
        ood = "" if record["ood_score"] is None else f", ood_score {record['ood_score']:.2f}"
        confidence = ("" if record["confidence"] is None
                      else f", confidence {record['confidence']:.3f}")
        facts = f"P(PG) {record['p_pg']:.3f} (raw {record['p_pg_raw']:.3f}){confidence}{ood}"
    return (f'<div class="card">{images}<div class="name">{escape(Path(record["file"]).name)}'
            f"</div>{facts}</div>")


def write_review(records: list[dict], thumbnails: dict, out_dir: Path, classifier) -> Path:
    """review.html (every image embedded: it opens offline) and the corrections.csv template.

    corrections.csv has a row per image and an empty `verdict`: write right, wrong, CEX, PG or
    neither where you looked (gacrystal.corrections); an empty verdict leaves the label as it is.
    Then `GAinfer.py --apply_corrections DIR/corrections.csv`.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = review_order(records)
    sections = []
    for name, members in groups.items():
        if members:
            cards = "".join(card_html(records[i], thumbnails.get(i)) for i in members)
            sections.append(f'<h2 id="{name.lower()}">{name} ({len(members)})</h2>'
                            f'<div class="grid">{cards}</div>')
    calibrated = "calibrated" if classifier.calibration else "not calibrated (raw)"
    gradcam = ("Right of each image: Grad-CAM of P(PG) (red raised it)."
               if classifier.model is not None else "")
    head = (f"<p>{len(records)} images labelled by {escape(classifier.path.name)}; P(PG) is "
            f"{calibrated}. Within each group the least certain come first. {gradcam} Correct "
            f"the labels in the verdict column of <code>{CORRECTIONS}</code> beside this page: "
            "right, wrong, CEX, PG, or neither (not a crystal; left out of training).</p>")
    page = out_dir / REVIEW_PAGE
    write_text_atomic(page, '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                            f"<title>Review</title><style>{STYLE}</style></head><body>"
                            f"<h1>Review of labels</h1>{head}{''.join(sections)}</body></html>")
    rows = [{"file": r["file"], "predicted": r["label"], "p_pg": r["p_pg"], "verdict": ""}
            for i in sum(groups.values(), []) for r in [records[i]]]
    write_csv(rows, out_dir / CORRECTIONS, CORRECTION_COLUMNS)
    return page


def read_corrections(path: Path) -> list[tuple[Path, str]]:
    """(file, class) for every row whose verdict gives it a class (an empty verdict: the
    predicted one); refuses a file it cannot read in one line."""
    if not path.is_file():
        raise UserError(f"no corrections file at apply_corrections={path}; write one with "
                        "`python GAinfer.py --images FOLDER --review DIR`")
    chosen = []
    for row, verdict in read_verdicts(path, "labelled files"):
        p_pg = float(row["p_pg"]) if row.get("p_pg") else None
        class_name = training_class(row.get("predicted", ""), p_pg, verdict)
        if class_name is not None:
            chosen.append((Path(row["file"]), class_name))
    return chosen


def copy_corrected(chosen: list[tuple[Path, str]], dest: Path) -> dict[str, int]:
    """Copies each file into dest/cex/ or dest/pg/ by gacrystal.corrections's rule (never moves a
    source, never overwrites, never leaves an image in both classes). Returns counts: copied,
    already there, relabelled, missing."""
    counts = {"copied": 0, "already there": 0, "relabelled": 0, "missing": 0}
    for source, class_name in chosen:
        if not source.is_file():
            counts["missing"] += 1
            print(f"missing: {source}")
            continue
        placed = place(source.read_bytes(), source.name, class_name, dest)
        for stale in placed.relabelled:
            counts["relabelled"] += 1
            print(f"relabelled {class_name}: {source} (its copy left {stale.parent})")
        counts["copied" if placed.written else "already there"] += 1
    return counts
