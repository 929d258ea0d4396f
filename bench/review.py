"""The review loop measured on particles it never saw (run by hand): the reference crops split by
particle into run A (reviewed) and run B (judged), no particle in both.

    python bench/review.py --real ../shared/reference/real --weights weights/model.keras
    python bench/review.py --real DIR --weights runs/RUN/model.keras --verdicts 25,50,100,200

For each fold (the two halves of the crops swap roles): frames made of run A's crops are
monitored with the model (GAmonitor.py's pipeline and defaults); the page's review (a
gacrystal.monitoring.review.ReviewPool of N regions, N = each --verdicts) is answered by a reviewer
simulated from the truth (a region over a PG crop's centre: PG; one that overlaps a PG crop by a
quarter of its own area without its centre: neither; else CEX); the model's head is fine-tuned on
those verdicts and the model's own training crops (GAfinetune.py's recipe and settings); then the
frames made of run B's crops are monitored with each model: the plain one, `--adapt` (fitted on
run B's own baseline), and each fine-tuned one; and with `--unreviewed predicted` for the largest N.

In both runs the baseline frames hold some of the run's CEX crops and the frames from the spike on
all of them (new crystals come into view), so a method that learns the baseline is not flattered.

Run B is monitored once (the backbone's features do not change with the head); each model's labels
are then given by its head on the features, and the frames recorded by the Monitor as GAmonitor.py
records them: the same counts, alarm and tables (tests/test_training_finetune.py checks that the
head on the features is the written model's output). The whole step, GAfinetune.py as a user runs
it (the crops cut from the frames again, the ONNX export), is timed once for the largest N.

Reports per model on run B: false PG per frame before the spike, PG recall, PG precision on the
frames from the spike on, the alarm's frame against the spike; and the fine-tune's time.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import time
from pathlib import Path

import numpy as np

from common import ROOT, machine

WORK = ROOT / "bench" / "_review"
FRAMES, SPIKE = 30, 11  # frames a run; the first with PG (1 PG, one more every 3 frames)
SCHEDULE = {"pg_first": 1, "pg_per_step": 1, "step_every": 3}
BASELINE_FRAMES = 10


def particles_of(folder: Path) -> tuple[list[Path], list[list[Path]]]:
    """The CEX crops, and the PG crops grouped by particle (rotated or mirrored copies of one crop
    are one particle: gacrystal.dataset.copies)."""
    from gacrystal.dataset.copies import find_groups, signature
    from gacrystal.images import grey_levels, read_rgb
    from gacrystal.synthetic.realism import real_crops
    crops = real_crops(folder, "real")
    pg = crops["PG"]
    groups = find_groups([signature(grey_levels(read_rgb(p))) for p in pg])
    return crops["CEX"], [[pg[i] for i in group] for group in groups]


def folds(cex: list[Path], pg: list[list[Path]]) -> list[tuple[dict, dict]]:
    """Two folds: the crops' halves (CEX by file, PG by particle), each half run A once."""
    half = {"cex": (cex[:len(cex) // 2], cex[len(cex) // 2:]),
            "pg": (pg[:len(pg) // 2] or pg[:1], pg[len(pg) // 2:])}
    first = {"cex": half["cex"][0], "pg": [p for g in half["pg"][0] for p in g]}
    second = {"cex": half["cex"][1], "pg": [p for g in half["pg"][1] for p in g]}
    return [(first, second), (second, first)]


def write_run(folder: Path, crops: dict, seed: int) -> Path:
    """FRAMES frames of these crops: the baseline from the first half of the CEX crops (at least
    one), all of them from the spike on."""
    from gacrystal.images import grey_levels, read_rgb
    from gacrystal.synthetic.frames import TRUTH_FILE, generate_frames
    from gacrystal.synthetic.mosaic import MosaicDrawer
    if (folder / TRUTH_FILE).is_file():
        return folder
    grey = [grey_levels(read_rgb(p)) for p in crops["cex"]]
    early = max(1, len(grey) // 2)
    draw = MosaicDrawer(grey[:early], [grey_levels(read_rgb(p)) for p in crops["pg"]],
                        grey[early:])
    generate_frames(folder, FRAMES, SPIKE, seed=seed, progress=False, draw=draw, **SCHEDULE)
    return folder


def classified(classifier, folder: Path):
    """(seen frames, their candidates' records with pooled features): GAmonitor.py's reading,
    quality, candidates and classification, done once."""
    from gacrystal.images import grey_levels, list_images
    from gacrystal.monitoring.candidates import find_candidates
    from gacrystal.monitoring.perframe import SeenFrame, classify_candidates, read_frame
    from gacrystal.monitoring.quality import QualityJudge, measure
    tile = int(classifier.card.get("crop_size", 151))
    judge, seen = QualityJudge(), []
    for path in sorted(list_images(folder), key=lambda p: int(p.stem.split("(")[-1][:-1])):
        rgb, mtime, _ = read_frame(path)
        quality = judge.judge_measures(measure(grey_levels(rgb)))
        candidates = find_candidates(rgb, tile, 3000) if quality.good else []
        seen.append(SeenFrame(path, mtime, rgb.shape, quality, candidates, rgb))
    records = classify_candidates(classifier, [(f.rgb, f.candidates) for f in seen], 32, 0.5,
                                  True, features=True)
    return seen, records


def relabelled(records, p_pg_of) -> list[list[dict]]:
    """The records with P(PG) and label from p_pg_of(features) (a head), UNKNOWN kept."""
    from gacrystal.images import CLASS_NAMES, label_and_confidence
    from gacrystal.monitoring.perframe import POOLED
    flat = [r for frame in records for r in frame
            if r.get(POOLED) is not None and r["label"] in CLASS_NAMES]
    p = iter(p_pg_of(np.stack([r[POOLED] for r in flat])) if flat else [])
    out = []
    for frame in records:
        rows = []
        for r in frame:
            r = dict(r)
            if r.get(POOLED) is not None and r["label"] in CLASS_NAMES:
                r["p_pg"] = float(next(p))
                r["label"], r["confidence"] = label_and_confidence(r["p_pg"], 0.5)
            rows.append(r)
        out.append(rows)
    return out


class Pools:
    """ReviewPools of several sizes fed together (the pages of runs with review_regions N)."""

    def __init__(self, sizes):
        from gacrystal.monitoring.review import ReviewPool
        self.pools = {n: ReviewPool(n, BASELINE_FRAMES) for n in sizes}

    def add(self, particle, features=None):
        for pool in self.pools.values():
            pool.add(particle, features)


def recorded(seen, records, out: Path, pools=None):
    """The frames recorded by a Monitor into out, as GAmonitor.py records them."""
    from gacrystal.monitoring import CusumRule, FrameClock, Monitor
    shutil.rmtree(out, ignore_errors=True)
    run = Monitor(None, out, FrameClock("exif"),
                  CusumRule(BASELINE_FRAMES, threshold=None, false_alarm_every_s=24 * 3600),
                  overlay_every=0)
    if pools is not None:
        run.picks = pools
    run.record_frames(seen, records)
    return run


def truth_verdict(particle, truth_boxes) -> str:
    """What a reviewer who knows the truth says of a region."""
    from monitor import centre_in
    row = {"x": particle.x, "y": particle.y, "w": particle.w, "h": particle.h}
    if any(centre_in(row, box) for box in truth_boxes):
        return "PG"
    area = particle.w * particle.h
    for x, y, w, h in truth_boxes:
        dx = min(particle.x + particle.w, x + w) - max(particle.x, x)
        dy = min(particle.y + particle.h, y + h) - max(particle.y, y)
        if max(dx, 0) * max(dy, 0) > area / 4:
            return "neither"
    return "CEX"


def judged(run, truth: dict) -> dict:
    """Run B's figures against its truth."""
    from monitor import centre_in
    rows = list(csv.DictReader(open(run.out / "particles.csv", encoding="utf-8")))
    before, hits, total, pg_after, true_after = [], 0, 0, 0, 0
    for frame in run.frames:
        t = truth[frame.frame]["pg"]
        pg = [r for r in rows if r["frame"] == frame.frame and r["counted"] == "1"
              and r["label"] == "PG"]
        if not t:
            before.append(len(pg))
            continue
        total += len(t)
        hits += sum(any(centre_in(r, box) for r in pg) for box in t)
        pg_after += len(pg)
        true_after += sum(any(centre_in(r, box) for box in t) for r in pg)
    fired = run.alarm_state.fired_at
    return {"false_pg": float(np.mean(before)), "recall": hits / max(total, 1),
            "precision": true_after / max(pg_after, 1),
            "alarm": "none" if fired is None else f"{fired + 1 - SPIKE:+d}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True, help="a folder of real crops (Kaggle names, or "
                        "cex/ and pg/), e.g. the project's reference crops")
    parser.add_argument("--weights", default=str(ROOT / "weights" / "model.keras"))
    parser.add_argument("--verdicts", default="25,50,100,200")
    parser.add_argument("--seed", type=int, default=52, help="the frames' seed")
    parser.add_argument("--time_script", action=argparse.BooleanOptionalAction, default=True,
                        help="time GAfinetune.py end to end once (largest N, first fold)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.verdicts.split(",")]
    print(f"machine: {machine()}\nmodel: {args.weights}")
    import GAfinetune
    from gacrystal.classifier import load_classifier, training_data_of
    from gacrystal.monitoring.adaptation import BaselineAdapter, fitting_folders, training_crops
    from gacrystal.synthetic.frames import read_truth
    from gacrystal.training import finetune
    from gacrystal.monitoring.perframe import POOLED
    defaults = {name: getattr(GAfinetune, name) for name in
                ("training_crops", "epochs", "learning_rate", "seed")}
    classifier = load_classifier(args.weights, features=True)
    model = classifier.model
    head = finetune.head_of(model)
    original = head.get_weights()
    started = time.perf_counter()
    own = GAfinetune.own_training_crops(classifier, Path(args.weights), "",
                                        defaults["training_crops"], 32)
    own_seconds = time.perf_counter() - started
    print(f"the model's training crops: {len(own[1])}, their features in {own_seconds:.1f} s")
    cex, pg = particles_of(Path(args.real))
    table = []
    for number, (crops_a, crops_b) in enumerate(folds(cex, pg), start=1):
        names = {k: [p.name for p in v] for k, v in crops_a.items()}
        names_b = {k: [p.name for p in v] for k, v in crops_b.items()}
        print(f"\n== fold {number}: run A {names}; run B {names_b}")
        folder_a = write_run(WORK / f"fold{number}-A", crops_a, args.seed + number)
        folder_b = write_run(WORK / f"fold{number}-B", crops_b, args.seed + 10 + number)
        seen_a, records_a = classified(classifier, folder_a)
        pools = Pools(sizes)
        run_a = recorded(seen_a, records_a, WORK / f"out-fold{number}-A", pools)
        truth_a, truth_b = read_truth(folder_a / "truth.csv"), read_truth(folder_b / "truth.csv")
        features_a = {(f.path.name, i): r.get(POOLED) for f, rs in zip(seen_a, records_a)
                      for i, r in enumerate(rs, start=1)}
        seen_b, records_b = classified(classifier, folder_b)
        results = {"plain": judged(recorded(seen_b, records_b, WORK / "out-B"), truth_b)}
        folders = fitting_folders(classifier, training_data_of(args.weights))
        adapter = BaselineAdapter(lambda: training_crops(classifier, *folders, 32),
                                  BASELINE_FRAMES, 0.5, WORK)
        ready = adapter.take(seen_b, records_b)
        results["--adapt"] = judged(recorded([f for f, _ in ready], [r for _, r in ready],
                                             WORK / "out-B"), truth_b)
        variants = [(n, "leave_out") for n in sizes] + [(max(sizes), "predicted")]
        for n, unreviewed in variants:
            offered = pools.pools[n].offered()
            verdicts = {(p.frame, p.particle): truth_verdict(p, truth_a[p.frame]["pg"])
                        for p, _ in offered}
            regions = [(features_a[key], {"CEX": 0, "PG": 1}[v], key[0])
                       for key, v in verdicts.items() if v in ("CEX", "PG")]
            if unreviewed == "predicted":
                regions += [(features_a[(p.frame, p.particle)], int(p.label == "PG"), p.frame)
                            for p in read_particles(run_a.out) if (p.frame, p.particle)
                            not in verdicts and p.label in ("CEX", "PG")]
            mine = (np.stack([f for f, _, _ in regions]), [c for _, c, _ in regions],
                    [g for _, _, g in regions])
            examples = finetune.Examples.stacked([mine, own], ["your regions", "training crops"])
            train, _ = finetune.split_by_group(examples, GAfinetune.validation_share,
                                               defaults["seed"])
            head.set_weights(original)
            clock = time.perf_counter()
            finetune.fit_head(model, train, defaults["epochs"], defaults["learning_rate"],
                              defaults["seed"])
            fit_seconds = time.perf_counter() - clock
            label = f"N={n}" + (" +unreviewed as predicted" if unreviewed == "predicted" else "")
            results[label] = judged(recorded(seen_b, relabelled(
                records_b, lambda x: finetune.predict_head(head, x)), WORK / "out-B"), truth_b)
            kinds = {v: sum(x == v for x in verdicts.values()) for v in ("CEX", "PG", "neither")}
            results[label]["note"] = f"verdicts {kinds}, head fit {fit_seconds:.1f} s"
            if number == 1 and n == max(sizes) and unreviewed == "leave_out" and args.time_script:
                results[label]["note"] += "; " + time_script(run_a.out, folder_a, verdicts,
                                                             args.weights)
        head.set_weights(original)
        for label, r in results.items():
            print(f"  {label:34s} false PG a frame {r['false_pg']:5.2f}  PG recall "
                  f"{r['recall']:.2f}  PG precision {r['precision']:.2f}  alarm {r['alarm']:>5s}"
                  + (f"  ({r['note']})" if r.get("note") else ""))
            table.append((number, label, r))


def read_particles(out: Path):
    from gacrystal.monitoring.records import ParticleRecord
    from gacrystal.monitoring.tables import iter_rows
    return [p for p in map(ParticleRecord.from_row, iter_rows(out / "particles.csv"))
            if p.counted]


def time_script(out: Path, frames: Path, verdicts: dict, weights: str) -> str:
    """GAfinetune.py end to end on these verdicts, as a user runs it: its wall time."""
    import GAfinetune
    from gacrystal.files import write_csv
    from gacrystal.monitoring.corrections import CORRECTION_COLUMNS
    rows = [{"frame": p.frame, "particle": p.particle, "x": p.x, "y": p.y, "w": p.w, "h": p.h,
             "predicted": p.label, "p_pg": p.p_pg, "verdict": verdicts[(p.frame, p.particle)]}
            for p in read_particles(out) if (p.frame, p.particle) in verdicts]
    write_csv(rows, out / "corrections.csv", CORRECTION_COLUMNS)
    from gacrystal.monitoring.state import save_state
    save_state(out, {"frames": str(frames), "weights": weights})
    runs = WORK / "runs"
    started = time.perf_counter()
    GAfinetune.main(["--run", str(out), "--weights", weights, "--runs", str(runs)])
    return f"GAfinetune.py end to end {time.perf_counter() - started:.0f} s"


if __name__ == "__main__":
    main()
