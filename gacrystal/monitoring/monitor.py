"""The monitor: classifies whole frames into an output folder, keeps the alarm, and takes up an
earlier run in the same folder where it stopped.

    monitor = Monitor(classifier, Path("monitor"), clock=FrameClock("auto"), alarm=CusumRule())
    monitor.resume()                   # frames already in monitor/frames.csv are not done again
    monitor.process([Path("frame (1).png"), ...])

Each frame: its quality first (gacrystal.monitoring.quality: a frame the probe could not see
through counts nothing and feeds no alarm; BLIND_AFTER such frames in a row make the probe
"blind"); then candidates (gacrystal.monitoring.candidates), each classified by the crop classifier
with its out-of-distribution check, counted (gacrystal.monitoring.counting) and sized
(gacrystal.monitoring.sizes); one row per candidate appended to particles.csv, the size rows to
sizes.csv, and one row per frame to frames.csv (frames.csv last: a frame is done once its row is
there).

The work splits in two, so that a cluster (gacrystal/monitoring/shards.py) can do the first part
anywhere and the monitor the second in order, in the same code as one process: what needs only the
frame (gacrystal.monitoring.perframe: reading it, its quality `measure`, `classify_candidates` of
several frames in shared batches; and `find_candidates`) and what needs the frames before it
(`QualityJudge.judge_measures`, the time, the counts, sizes, alarm, tables and overlays:
`Monitor.record_frames`).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from gacrystal.files import append_csv
from gacrystal.images import grey_levels
from gacrystal.monitoring.alarm import AlarmRule, AlarmState
from gacrystal.monitoring.candidates import find_candidates
from gacrystal.monitoring.clock import FrameClock
from gacrystal.monitoring.counting import frame_summary, particle_records
from gacrystal.monitoring.overlay import LATEST, OVERLAYS, draw_overlay
from gacrystal.monitoring.perframe import (POOLED, SeenFrame, classify_candidates, measures_of,
                                           read_frame)
from gacrystal.monitoring.quality import BLIND_AFTER, QualityJudge, measure
from gacrystal.monitoring.records import (FRAME_COLUMNS, PARTICLE_COLUMNS, FrameRecord,
                                          FrameSummary, ParticleRecord)
from gacrystal.monitoring.review import DEFAULT_REVIEW_REGIONS, ReviewPool
from gacrystal.monitoring.sizes import SIZE_COLUMNS, SizeWindow
from gacrystal.monitoring.tables import (FRAMES_CSV, PARTICLES_CSV, SIZES_CSV, UNREADABLE_COLUMNS,
                                         UNREADABLE_CSV, append_unreadable, check_columns,
                                         file_signature, iter_rows, keep_rows, read_unreadable)


class Monitor:
    """Classifies frames into an output folder and keeps the alarm; see the module's docstring.

    Args:
        classifier: a gacrystal.classifier.Classifier.
        out: the output folder (frames.csv, particles.csv, unreadable.csv, overlays/).
        alarm: the alarm rule (gacrystal.monitoring.alarm).
        tile_size: the side of the tiles over the needle field, in px.
        min_area: the smallest blob, in px.
        um_per_px: the probe's scale; 0 leaves the µm columns empty.
        overlay_every: an overlay PNG of the first frame and every overlay_every-th after it (and
            of the frame where the alarm fires); 0: none.
        window_frames: the good frames the size distributions over a window pool.
        on_alarm: called with the FrameRecord of the frame where the alarm fires.
        on_figures: called with the alarm's AlarmFigures when it has learnt its baseline (also
            when a resumed run has replayed it); they are written to OUT/alarm.json.
        on_frame: called with each FrameRecord once its rows are written (OPC UA publishes it).
        latest_overlay: also draw the last frame of each batch as overlays/latest.png (a
            watch's live page shows it).
        adapter: a gacrystal.monitoring.adaptation.BaselineAdapter (--adapt): the first frames
            are held until it has fitted on them, then every frame is recorded relabelled.
        review_regions: how many regions the page offers for review
            (gacrystal.monitoring.review).
    """

    def __init__(self, classifier, out: Path, clock: FrameClock, alarm: AlarmRule,
                 tile_size: int = 151, min_area: float = 3000, um_per_px: float = 0.0,
                 batch_size: int = 32, threshold: float = 0.5, reject: bool = True,
                 overlay_every: int = 10, on_alarm=None, on_figures=None,
                 window_frames: int = 10, on_frame=None, latest_overlay: bool = False,
                 adapter=None, review_regions: int = DEFAULT_REVIEW_REGIONS):
        self.classifier, self.out, self.clock, self.alarm = classifier, Path(out), clock, alarm
        self.tile_size, self.min_area, self.um_per_px = tile_size, min_area, um_per_px
        self.batch_size, self.threshold, self.reject = batch_size, threshold, reject
        self.overlay_every = overlay_every
        self.on_alarm = on_alarm or (lambda frame: None)
        self.on_figures = on_figures or (lambda figures: None)
        self.on_frame = on_frame or (lambda frame: None)
        self.latest_overlay = latest_overlay
        self.adapter = adapter
        self.figures_told = False
        self.frames: list[FrameRecord] = []  # this run's and earlier runs'
        # {frame: (why, (size, mtime_ns))}: given up on while the file stays as it was
        self.unreadable: dict[str, tuple[str, tuple[int, int]]] = {}
        # the regions the page offers for review, chosen as the run goes
        self.picks = ReviewPool(review_regions, getattr(alarm, "baseline_frames", 10), threshold)
        # the pooled features, where the model gives them: for --adapt and the review's variety
        self.has_features = bool(getattr(classifier, "feature_sizes", None))
        self.judge = QualityJudge()
        self.sizes = SizeWindow(window_frames, um_per_px)
        self.not_good_in_a_row = 0
        self.told_empty = False
        self.seconds = {"read": 0.0, "find": 0.0, "classify": 0.0, "write": 0.0}  # this run's
        self.out.mkdir(parents=True, exist_ok=True)

    @property
    def done(self) -> set[str]:
        """The frames recorded, and those an adapter holds (they are not to be read again)."""
        held = self.adapter.held if self.adapter is not None else []
        return {frame.frame for frame in self.frames} | {seen.path.name for seen, _ in held}

    @property
    def alarm_state(self) -> AlarmState:
        return self.alarm.state

    def resume(self, clock_state: dict | None = None, folder: Path | None = None):
        """Takes up an earlier run in the same folder: its frames are done; particle rows of a
        frame whose frames.csv row was never written (a crash in between) are dropped; the alarm
        is replayed from the counts; the clock goes on from clock_state (FrameClock.state(), kept
        in monitor.json), else from the first frame; with the frames' folder, the quality judge
        from the last frames it kept (QualityJudge.recall). A table written with other columns
        (another version) is refused before anything is written."""
        tables = ((FRAMES_CSV, FRAME_COLUMNS), (PARTICLES_CSV, PARTICLE_COLUMNS),
                  (SIZES_CSV, SIZE_COLUMNS), (UNREADABLE_CSV, UNREADABLE_COLUMNS))
        for name, columns in tables:
            check_columns(self.out / name, columns)
        self.frames = [FrameRecord.from_row(row, self.replay)
                       for row in iter_rows(self.out / FRAMES_CSV)]
        for frame in reversed(self.frames):  # the frames not good at the end, if any
            if frame.good:
                break
            self.not_good_in_a_row += 1
        done = self.done
        # the size window goes on with the particles of the last good frames
        window = [f for f in self.frames if f.good][-self.sizes.recent.maxlen:]
        in_window: dict[str, list[ParticleRecord]] = {f.frame: [] for f in window}
        particles_path = self.out / PARTICLES_CSV
        orphans = False
        for row in iter_rows(particles_path):  # streamed: this file is the long one
            if row["frame"] in done:
                particle = ParticleRecord.from_row(row)
                self.picks.add(particle)
                if particle.frame in in_window:
                    in_window[particle.frame].append(particle)
            else:
                orphans = True
        for frame in window:
            self.sizes.add(frame.frame, frame.elapsed_s, in_window[frame.frame])
        if orphans:
            keep_rows(particles_path, lambda row: row["frame"] in done, PARTICLE_COLUMNS)
        if any(row["frame"] not in done for row in iter_rows(self.out / SIZES_CSV)):
            keep_rows(self.out / SIZES_CSV, lambda row: row["frame"] in done, SIZE_COLUMNS)
        first = self.frames[0] if self.frames else None
        self.clock.restore(clock_state or {}, first and first.time_source, first and first.time)
        self.unreadable = read_unreadable(self.out / UNREADABLE_CSV)
        if folder is not None:
            self.judge.recall([f.quality for f in self.frames],
                              lambda i: measures_of(Path(folder, self.frames[i].frame)))
        self.tell_figures()

    def replay(self, summary, elapsed_s: float) -> AlarmState:
        """A resumed frame through the alarm: a good frame's summary updates it; a frame that was
        not good (summary None) leaves it as it stood."""
        if summary is None:
            return dataclasses.replace(self.alarm.state, fired_now=False)
        return self.alarm.update(summary, elapsed_s)

    def tell_figures(self):
        """Once the alarm has learnt its baseline: its figures to OUT/alarm.json and on_figures."""
        figures = self.alarm.figures
        if figures is None or self.figures_told:
            return
        from gacrystal.files import write_text_atomic
        from gacrystal.monitoring.state import ALARM_JSON
        write_text_atomic(self.out / ALARM_JSON, json.dumps(figures.as_dict(), indent=2))
        self.figures_told = True
        self.on_figures(figures)

    def still_unreadable(self) -> list[str]:
        """The frames given up on and not done since."""
        done = self.done
        return [name for name in self.unreadable if name not in done]

    def report_unreadable(self, path: Path, reason: str):
        """Gives up on a frame while its file stays as it is (a later change, such as the rest of
        a half-written file arriving, makes it new again)."""
        print(f"{path.name}: cannot be read ({reason}); not counted", file=sys.stderr)
        signature = file_signature(path) or (-1, -1)
        self.unreadable[path.name] = (reason, signature)
        append_unreadable(self.out / UNREADABLE_CSV, path.name, reason, signature)

    def process(self, paths: list[Path], report_errors: bool = True) -> dict[Path, str]:
        """Reads, classifies (all candidates of all these frames in shared batches) and records
        the frames in order. Returns {frame: why} of those that could not be read; with
        report_errors they are also reported (on stderr and in unreadable.csv)."""
        seen, failed = [], {}
        clock = time.perf_counter()
        for path in paths:
            rgb, mtime, why = read_frame(path)
            if rgb is None:
                failed[path] = why
                if report_errors:
                    self.report_unreadable(path, why)
                continue
            quality = self.judge.judge_measures(measure(grey_levels(rgb)))
            seen.append(SeenFrame(path, mtime, rgb.shape, quality, [], rgb))
        clock = self.lap("read", clock)
        for frame in seen:
            if frame.quality.good:
                frame.candidates = find_candidates(frame.rgb, self.tile_size, self.min_area)
        clock = self.lap("find", clock)
        records = classify_candidates(self.classifier, [(f.rgb, f.candidates) for f in seen],
                                      self.batch_size, self.threshold, self.reject,
                                      features=self.adapter is not None or self.has_features)
        if self.adapter is not None:  # held until it has fitted, then relabelled
            ready = self.adapter.take(seen, records)
            seen, records = [f for f, _ in ready], [r for _, r in ready]
        clock = self.lap("classify", clock)
        self.record_frames(seen, records)
        self.lap("write", clock)
        return failed

    def record_frames(self, seen: list[SeenFrame], records: list[list[dict]]):
        """Records frames in order, each with its candidates' classifier records."""
        for frame, frame_records in zip(seen, records):
            particles = self.record_frame(frame, frame_records)
        if self.latest_overlay and seen:
            draw_overlay(seen[-1].pixels(), self.frames[-1], particles,
                         self.out / OVERLAYS / LATEST)

    def lap(self, step: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[step] += now - since
        return now

    def time_shares(self) -> str:
        total = sum(self.seconds.values()) or 1.0
        return ", ".join(f"{step} {100 * t / total:.0f}%" for step, t in self.seconds.items())

    def record_frame(self, seen: SeenFrame, records: list[dict]) -> list[ParticleRecord]:
        path, candidates, quality = seen.path, seen.candidates, seen.quality
        when, elapsed, source = self.clock.time_of(path, len(self.frames), seen.mtime)
        if quality.good and not candidates and not self.told_empty:
            self.told_empty = True
            print(f"note: {path.name} gave no regions to classify (a flat frame? 16-bit frames "
                  "are read by their top 8 bits); check its overlay", file=sys.stderr)
        particles = particle_records(path.name, when, float(elapsed), candidates, records,
                                     self.um_per_px)
        summary = (frame_summary(particles, seen.shape[0] * seen.shape[1]) if quality.good
                   else FrameSummary.nothing())
        events = []
        if quality.good:
            alarm = self.alarm.update(summary, float(elapsed))
            if self.not_good_in_a_row >= BLIND_AFTER:
                events.append("probe sees again")
            self.not_good_in_a_row = 0
            size_rows = self.sizes.add(path.name, float(elapsed), particles)
        else:
            alarm = dataclasses.replace(self.alarm.state, fired_now=False)
            self.not_good_in_a_row += 1
            if self.not_good_in_a_row == BLIND_AFTER:
                events.append("probe blind")
            size_rows = []
        if alarm.fired_now:
            events.insert(0, "alarm")
        frame = FrameRecord(path.name, when, float(elapsed), source, quality.verdict,
                            quality.measure, summary, *self.sizes.d50(), alarm,
                            self.not_good_in_a_row >= BLIND_AFTER, "; ".join(events))
        self.tell_figures()
        append_csv(self.out / PARTICLES_CSV, [p.row() for p in particles], PARTICLE_COLUMNS)
        append_csv(self.out / SIZES_CSV, size_rows, SIZE_COLUMNS)
        append_csv(self.out / FRAMES_CSV, [frame.row()], FRAME_COLUMNS)  # last: the frame is done
        for particle, record in zip(particles, records):
            self.picks.add(particle, record.get(POOLED))
        self.frames.append(frame)
        index = len(self.frames) - 1
        if frame.alarm.fired_now or (self.overlay_every and index % self.overlay_every == 0):
            draw_overlay(seen.pixels(), frame, particles,
                         self.out / OVERLAYS / f"{Path(path.name).stem}.png")
        if frame.alarm.fired_now:
            self.on_alarm(frame)
        self.on_frame(frame)
        return particles

    @property
    def blind(self) -> bool:
        return self.not_good_in_a_row >= BLIND_AFTER
