"""Realism figures of the synthetic generator, now and at an earlier commit (issue 15).

    python bench/realism.py --real FOLDER                   # the current generator
    python bench/realism.py --real FOLDER --before 7b7b618  # also the generator of that commit

Prints the figures of gacrystal.synthetic.realism for a folder of real crops (--real) and a
synthetic sample.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gacrystal.synthetic import realism  # noqa: E402


# Where the generator lived at a commit, newest first, and its helpers before they moved into
# gacrystal/synthetic/ (the old source imports them by their old names; the current ones serve).
GENERATOR_PATHS = ("gacrystal/synthetic/crops.py", "gacrystal/synthetic.py")
MOVED = {"gacrystal.drawing": "gacrystal.synthetic.drawing", "gacrystal.frames":
         "gacrystal.synthetic.frames", "gacrystal.realism": "gacrystal.synthetic.realism"}


def generator_at(commit: str):
    """The synthetic crops' module (gacrystal.synthetic.crops) as it was at `commit`."""
    for name in GENERATOR_PATHS:
        shown = subprocess.run(["git", "show", f"{commit}:{name}"], cwd=ROOT,
                               capture_output=True, text=True)
        if shown.returncode == 0:
            break
    else:
        sys.exit(f"no synthetic generator at {commit} ({' or '.join(GENERATOR_PATHS)})")
    source = shown.stdout
    for old, new in MOVED.items():
        source = source.replace(f"from {old} import", f"from {new} import")
    path = Path(tempfile.mkdtemp()) / "synthetic_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("synthetic_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True,
                        help="a folder of real crops (Kaggle names, or cex/ and pg/), e.g. "
                        "the project's reference crops ../shared/reference/real")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--before", default=None, help="a commit whose generator to measure too")
    args = parser.parse_args()
    real = realism.real_crops(args.real)
    if args.before:
        old = generator_at(args.before)
        sample = realism.synthetic_sample(args.count, args.seed,
                                          draw_cex=lambda rng: old.draw_cex(rng, 151),
                                          draw_pg=lambda rng: old.draw_pg(rng, (130, 230)))
        print(f"generator at {args.before}:")
        print(realism.format_rows(realism.compare(real, sample)))
    print("current generator:")
    print(realism.format_rows(realism.compare(real, realism.synthetic_sample(args.count, args.seed))))


if __name__ == "__main__":
    main()
