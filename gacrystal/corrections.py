"""Corrections back into training, the one loop of `GAinfer.py --review/--apply_corrections`
(labelled files) and `GAmonitor.py --export_crops` (regions cut from monitored frames): one
vocabulary, one corrections.csv reader, one placement rule.

**corrections.csv**: a row per image or region shown for review, the columns that name it (`file`
for GAinfer.py; `frame`, `particle` and the box for GAmonitor.py), `predicted`, `p_pg`, and a
`verdict`, empty until a reviewer writes one of:

- `right`: the label is right; `wrong`: it is the other class (an UNKNOWN region takes the class
  its P(PG) points to);
- `CEX` or `PG`: it is that class, whatever was predicted;
- `neither`: not a crystal of either class (a bubble, debris, an unreadable file): left out;
- empty: not looked at; the label stands (UNKNOWN and ERROR rows are left out).

An older GAinfer.py file (a `corrected` column holding the class, empty for "leave it out") reads
as the same verdicts. Each script refuses the other's file in one line that names the command
that reads it.

**Placement** into a Kaggle-layout training folder (DEST/cex/, DEST/pg/, which GAsplit.py reads):
- nothing is overwritten: a different image of the same name goes beside it, its hash in its name;
- the same image is not written twice;
- an image whose class changed since an earlier run (a reviewer changed their mind) leaves the
  other class's folder: one image never trains under both labels.
Images are compared by their bytes' sha256, under either name they may have been given.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from gacrystal.errors import UserError
from gacrystal.files import CSV_TEXT, atomic_path
from gacrystal.images import CLASS_NAMES, UNKNOWN, predicted_labels

CORRECTIONS = "corrections.csv"
VERDICTS = ("right", "wrong", "neither", *CLASS_NAMES)  # and empty: not looked at
# What names a row in each script's file, and the command that reads that file.
KEYS = {"labelled files": (["file"], "python GAinfer.py --apply_corrections {path}"),
        "monitored regions": (["frame", "particle"], "python GAmonitor.py --out OUT "
                                                      "--export_crops DIR --corrections {path}")}


def verdict_of(text: str) -> str:
    """A verdict as written by a reviewer (any case, spaces around it) in the vocabulary's
    spelling; ValueError for a word outside it."""
    word = (text or "").strip()
    for verdict in ("", *VERDICTS):
        if word.lower() == verdict.lower():
            return verdict
    raise ValueError(word)


def training_class(predicted: str, p_pg: float | None, verdict: str) -> str | None:
    """The class an image joins training with by its verdict, or None (left out)."""
    if verdict in CLASS_NAMES:
        return verdict
    if verdict == "neither":
        return None
    if verdict == "wrong":
        if predicted == UNKNOWN:  # the class its P(PG) points to, by the one threshold rule
            return CLASS_NAMES[int(predicted_labels(p_pg or 0)[0])]
        return {CLASS_NAMES[0]: CLASS_NAMES[1], CLASS_NAMES[1]: CLASS_NAMES[0]}.get(predicted)
    return predicted if predicted in CLASS_NAMES else None


def older_verdict(row: dict) -> str:
    """The verdict an older GAinfer.py row means by its `corrected` class (empty: left out)."""
    corrected = (row.get("corrected") or "").strip().upper()
    if not corrected:
        return "neither"
    if corrected not in CLASS_NAMES:
        raise ValueError(row.get("corrected"))
    return "right" if corrected == (row.get("predicted") or "").strip().upper() else corrected


def read_verdicts(path: Path, kind: str) -> list[tuple[dict, str]]:
    """(row, verdict) of each row of a corrections.csv of `kind` (a key of KEYS); a file of the
    other kind, or a word outside the vocabulary, is refused in one line."""
    keys, _ = KEYS[kind]
    with open(path, **CSV_TEXT) as f:  # as write_csv wrote it: odd file names stay as they are
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if not set(keys) <= columns:
            for other, (other_keys, command) in KEYS.items():
                if other != kind and set(other_keys) <= columns:
                    raise UserError(f"{path} lists {other}, not {kind}: read it with "
                                    + command.format(path=path))
            raise UserError(f"{path} needs the columns {', '.join(keys)} and verdict. "
                            f"Received: {', '.join(sorted(columns)) or 'nothing'}")
        older = "verdict" not in columns and "corrected" in columns
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append((row, older_verdict(row) if older else verdict_of(row.get("verdict"))))
            except ValueError as error:
                column, allowed = (("corrected", "CEX, PG or empty") if older else
                                   ("verdict", "right, wrong, neither, CEX, PG or empty"))
                raise UserError(f"{path}, line {line}: {column} must be {allowed}. "
                                f"Received: {str(error)!r}") from None
    return rows


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashed_name(name: str, digest: str) -> str:
    """The name an image gets where another image already has its name."""
    path = Path(name)
    return f"{path.stem}_{digest[:8]}{path.suffix}"


def copies_in(folder: Path, name: str, digest: str) -> list[Path]:
    """The copies of an image (name, digest) that `place` may have put into folder."""
    candidates = (folder / name, folder / hashed_name(name, digest))
    return [path for path in candidates
            if path.is_file() and sha256(path.read_bytes()) == digest]


@dataclass(frozen=True)
class Placed:
    path: Path  # where the image is now
    written: bool  # False: it was there already
    relabelled: list[Path]  # its copies removed from the other class's folder


def place(data: bytes, name: str, class_name: str, dest: Path) -> Placed:
    """Puts the image (its file's bytes) as `name` into dest's folder for class_name, by the
    module's rule."""
    digest = sha256(data)
    stale = [copy for other in CLASS_NAMES if other != class_name
             for copy in copies_in(dest / other.lower(), name, digest)]
    for copy in stale:
        copy.unlink()
    folder = dest / class_name.lower()
    folder.mkdir(parents=True, exist_ok=True)
    there = copies_in(folder, name, digest)
    if there:
        return Placed(there[0], False, stale)
    target = folder / name
    if target.exists():
        target = folder / hashed_name(name, digest)
    with atomic_path(target) as temporary:  # a crash leaves no half-written image
        temporary.write_bytes(data)
    return Placed(target, True, stale)
