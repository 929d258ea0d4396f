"""A monitored run's regions back into training: the marks made on monitor.html (or in
corrections.csv), and the counted regions' crops exported in the Kaggle layout for GAsplit.py and
`GAmain.py --init_weights` (GAmonitor.py --export_crops DIR [--corrections FILE]).

corrections.csv: one row per region shown for review (frame, particle, box, predicted, p_pg) and
a `verdict` in the vocabulary both scripts share (gacrystal.corrections): right, wrong, CEX, PG,
neither (not a crystal: a bubble, debris; left out of training), or empty (not looked at).

The export writes each counted region's crop (CEX tiles and PG blobs; UNKNOWN ones only where a
verdict gives them a class) as DIR/cex/NAME.png or DIR/pg/NAME.png, with the class its verdict
gives, and one row per crop in DIR/crops.csv (file, class, frame, particle, box, predicted,
p_pg, verdict): back from every crop to its frame and box. The crops are placed by
gacrystal.corrections's rule, as GAinfer.py places its corrected files: nothing is overwritten,
the same crop is not written twice, and a crop whose verdict changed since an earlier export
leaves the other class's folder.
"""
from __future__ import annotations

import io
from pathlib import Path

from gacrystal.corrections import CORRECTIONS, place, read_verdicts, training_class
from gacrystal.errors import UserError
from gacrystal.files import append_csv, write_csv
from gacrystal.images import ImageError, read_rgb

CORRECTION_COLUMNS = ["frame", "particle", "x", "y", "w", "h", "predicted", "p_pg", "verdict"]
CROPS_CSV = "crops.csv"
CROP_COLUMNS = ["file", "class", "frame", "particle", "x", "y", "w", "h", "predicted", "p_pg",
                "verdict"]


def write_template(out: Path, particles) -> bool:
    """OUT/corrections.csv listing these regions with empty verdicts, unless the file already
    holds a verdict (the user's marks are never written over). Returns whether it was written."""
    path = out / CORRECTIONS
    if path.is_file() and any(verdict for verdict in read_corrections(path).values()):
        return False
    rows = [{"frame": p.frame, "particle": p.particle, "x": p.x, "y": p.y, "w": p.w, "h": p.h,
             "predicted": p.label, "p_pg": p.p_pg, "verdict": ""} for p in particles]
    write_csv(rows, path, CORRECTION_COLUMNS)
    return True


def read_corrections(path: Path) -> dict[tuple[str, int], str]:
    """{(frame, particle): verdict} of a corrections.csv (empty verdicts included); a verdict
    outside the shared vocabulary, or GAinfer.py's file, is refused in one line."""
    if not path.is_file():
        raise UserError(f"no corrections file at corrections={path}; mark regions on "
                        "monitor.html and save them, or edit the corrections.csv beside it")
    verdicts = {}
    for line, (row, verdict) in enumerate(read_verdicts(path, "monitored regions"), start=2):
        try:
            verdicts[(row["frame"], int(row["particle"]))] = verdict
        except ValueError:
            raise UserError(f"{path}, line {line}: particle must be a whole number. "
                            f"Received: {row['particle']!r}") from None
    return verdicts


def png_bytes(rgb) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def forget_crops(dest: Path, files: set[str]):
    """crops.csv without the rows of these crop files (they left their class's folder)."""
    from gacrystal.monitoring.tables import keep_rows
    keep_rows(dest / CROPS_CSV, lambda row: row["file"] not in files, CROP_COLUMNS)


def classed_crops(particle_rows, frames_dir: Path, verdicts: dict[tuple[str, int], str],
                  counts: dict[str, int], unreviewed: bool = True):
    """(row, crop pixels, class, verdict) of each counted region that its verdict, or where it
    has none and `unreviewed` is on its label, gives a class; counts "left out" and "frames
    missing" into counts. particle_rows: particles.csv's rows (a frame's regions together)."""
    frame_name, rgb = None, None
    for row in particle_rows:
        if row["counted"] != "1":
            continue
        verdict = verdicts.get((row["frame"], int(row["particle"])), "")
        p_pg = float(row["p_pg"]) if row["p_pg"] else None
        class_name = training_class(row["label"], p_pg, verdict)
        if class_name is None or not (verdict or unreviewed):
            counts["left out"] += 1
            continue
        if row["frame"] != frame_name:
            frame_name = row["frame"]
            try:
                rgb = read_rgb(frames_dir / frame_name)
            except (ImageError, OSError):
                rgb = None
        if rgb is None:
            counts["frames missing"] += 1
            continue
        x, y, w, h = (int(row[k]) for k in ("x", "y", "w", "h"))
        yield row, rgb[y:y + h, x:x + w].copy(), class_name, verdict  # not a view of the frame


def export_crops(particle_rows, frames_dir: Path, dest: Path,
                 verdicts: dict[tuple[str, int], str]) -> dict[str, int]:
    """Writes the counted regions' crops into dest/cex/ and dest/pg/ (see the module's
    docstring). particle_rows: particles.csv's rows. Returns counts: written, already there,
    relabelled, left out, frames missing."""
    counts = {"written": 0, "already there": 0, "relabelled": 0, "left out": 0,
              "frames missing": 0}
    for row, crop, class_name, verdict in classed_crops(particle_rows, frames_dir, verdicts,
                                                         counts):
        frame_name, p_pg = row["frame"], float(row["p_pg"]) if row["p_pg"] else None
        x, y, w, h = (int(row[k]) for k in ("x", "y", "w", "h"))
        name = f"{Path(frame_name).stem} #{row['particle']}.png"
        placed = place(png_bytes(crop), name, class_name, dest)
        counts["written" if placed.written else "already there"] += 1
        counts["relabelled"] += len(placed.relabelled)
        if placed.relabelled:  # their rows would name files that are gone
            forget_crops(dest, {str(p.relative_to(dest)) for p in placed.relabelled})
        if placed.written:
            append_csv(dest / CROPS_CSV, [{
                "file": str(placed.path.relative_to(dest)), "class": class_name, "frame": frame_name,
                "particle": row["particle"], "x": x, "y": y, "w": w, "h": h,
                "predicted": row["label"], "p_pg": p_pg, "verdict": verdict}], CROP_COLUMNS)
    return counts


def monitored_run(out: Path, setting: str = "out") -> dict:
    """monitor.json of the run in out (its frames, its model), refused in one line where out
    holds no monitored run."""
    from gacrystal.monitoring.state import load_state
    from gacrystal.monitoring.tables import PARTICLES_CSV
    state = load_state(out)
    if state is None or not (out / PARTICLES_CSV).is_file():
        raise UserError(f"no monitored run in {setting}={out} (no monitor.json and "
                        "particles.csv); monitor the frames first with GAmonitor.py --out "
                        f"{out}")
    return state


def run_verdicts(out: Path, corrections: Path | None) -> dict[tuple[str, int], str]:
    """The verdicts of `corrections` (a file, or None: none), the run's own file named where
    the one given is missing."""
    beside = out / CORRECTIONS
    if corrections and not corrections.is_file() and beside.is_file():
        raise UserError(f"no corrections file at corrections={corrections}; the run's own is "
                        f"{beside} (pass --corrections {beside}, or the file the page saved)")
    return read_corrections(corrections) if corrections else {}


def export_run(out: Path, dest: Path, corrections: Path | None) -> tuple[dict[str, int], int]:
    """A monitored run's counted regions (out's particles.csv, its frames as monitor.json names
    them) exported into dest, corrected by the verdicts in `corrections` (a file, or None).
    Returns (export_crops's counts, the regions given a verdict)."""
    from gacrystal.monitoring.tables import PARTICLES_CSV, iter_rows
    state = monitored_run(out)
    verdicts = run_verdicts(out, corrections)
    counts = export_crops(iter_rows(out / PARTICLES_CSV), Path(state["frames"]), dest, verdicts)
    return counts, sum(bool(v) for v in verdicts.values())


def reviewed_regions(out: Path, corrections: Path | None, unreviewed: bool) -> tuple[list, dict]:
    """The regions of a monitored run that have a class, for fine-tuning (GAfinetune.py): those
    with a verdict, and with `unreviewed` also the others as the model labelled them. Returns
    ([(crop pixels, class, frame, verdict)], counts: left out, frames missing)."""
    from gacrystal.monitoring.tables import PARTICLES_CSV, iter_rows
    state = monitored_run(out, "run")
    verdicts = run_verdicts(out, corrections)
    counts = {"left out": 0, "frames missing": 0}
    regions = [(crop, class_name, row["frame"], verdict) for row, crop, class_name, verdict
               in classed_crops(iter_rows(out / PARTICLES_CSV), Path(state["frames"]),
                                verdicts, counts, unreviewed)]
    return regions, counts


def export_report(counts: dict[str, int], marked: int, dest: str, corrections: str,
                  weights: str) -> str:
    """What export_run did (its counts, the regions given a verdict), and what to run next."""
    return (f"exported to {dest}/cex and {dest}/pg: {counts['written']} crops written, "
            f"{counts['already there']} already there, {counts['relabelled']} moved to the other "
            f"class (their verdict changed), {counts['left out']} left out (UNKNOWN or "
            f"marked neither), {counts['frames missing']} from frames no longer readable; "
            f"{marked} regions corrected by {corrections or 'no corrections file'}\n"
            f"next: python GAsplit.py --source {dest} --dest {dest}-split, then python GAmain.py "
            f"--data {dest}-split --init_weights {weights} (fine-tune the model on them)")
