"""Drawing speed of synthetic probe frames (GAsynth.py --frames), now and at an earlier commit, and
the check that a seed gives the same bytes on any number of processes (run by hand).

    python bench/frames.py                      # the current generator
    python bench/frames.py --before 19382ee     # also the generator of that commit

Each generator writes the same `--frames` frames (1280 x 960, PG from frame 2 on) once on one
process and once on every core, in a fresh process of its own (the code of --before is checked
out with `git archive` into a temporary folder); prints seconds per frame for both and whether
the two folders hold byte-identical files.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, machine

CHILD = """
import hashlib, json, sys, time
from pathlib import Path
from gacrystal.synthetic.frames import generate_frames
out, count, workers = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
started = time.perf_counter()
generate_frames(out, count, 2, seed=42, progress=False, workers=workers)
seconds = time.perf_counter() - started
digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}
print(json.dumps({"seconds": seconds, "digest": digest}))
"""


def timed(code_root: Path, out: Path, count: int, workers: int) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(out), str(count), str(workers)],
                            cwd=code_root, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def code_at(commit: str) -> Path:
    folder = Path(tempfile.mkdtemp())
    archive = subprocess.run(["git", "archive", commit, "gacrystal"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def measure(label: str, code_root: Path, count: int):
    import os
    with tempfile.TemporaryDirectory() as work:
        one = timed(code_root, Path(work, "one"), count, 1)
        every = timed(code_root, Path(work, "all"), count, os.cpu_count() or 1)
    same = one["digest"] == every["digest"]
    print(f"{label}: {one['seconds'] / count:.2f} s per frame on 1 process, "
          f"{every['seconds'] / count:.2f} s per frame on {os.cpu_count()} "
          f"({'byte-identical' if same else 'DIFFERENT files'} on 1 and {os.cpu_count()})")
    digest = hashlib.sha256("".join(one["digest"].values()).encode()).hexdigest()[:12]
    print(f"  digest of the {count} frames and truth.csv: {digest}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--before", default=None, help="a commit whose generator to time too")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.before:
        measure(f"generator at {args.before}", code_at(args.before), args.frames)
    measure("current generator", ROOT, args.frames)


if __name__ == "__main__":
    main()
