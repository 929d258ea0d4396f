"""Watching a crystallization for PG in whole probe frames (GAmonitor.py), one module a subject:

- candidates: where to look in a whole frame (the blob finder and the tiles of CEX texture);
- clock: where each frame's time comes from (the one rule that picks the source, FrameClock);
- alarm: the onset alarm behind a small interface (AlarmRule -> AlarmState; the CUSUM rule);
- arl: what the alarm promises (its false-alarm interval and detection delays);
- quality: whether a frame is good (dark, saturated, out of focus, ...);
- sizes: the particles' size distributions over a window of frames;
- records: the typed per-frame and per-particle records and the tables' columns;
- counting: what is counted in a frame, its PG fraction and Wilson interval;
- outputs: the name of every file the output folder holds, spelled once;
- tables: frames.csv, particles.csv, unreadable.csv: appended, read back, their columns checked;
- perframe: the work that needs one frame alone (reading it, its quality measures, classifying);
- adaptation: the decision fitted to a run's baseline frames, taken to be free of PG (--adapt);
- monitor: the Monitor, which classifies frames into an output folder and resumes a run;
- shards: the per-frame work on a Dask cluster, recorded by the Monitor in order (--cluster);
- watch: listing a folder's new frames (or experiment folders) and watching one a probe writes
  into;
- review: which regions the page offers for review, the most telling first;
- overlay, trend, page: a frame's boxes, trend.png, monitor.html;
- corrections: the reviewer's verdicts and the crops exported for training;
- opcua, opcua_users: the run's state on OPC UA, and its users file of password hashes;
- state: monitor.json and clearing an output folder;
- session: a run as GAmonitor.py runs it, from opening its folder to the report (here or on Dask).

    from gacrystal.monitoring import CusumRule, FrameClock, Monitor
    monitor = Monitor(classifier, Path("monitor"), FrameClock("auto"), CusumRule())
    monitor.resume()
    monitor.process(new_frames(Path("frames"), monitor))
"""
from gacrystal.monitoring.alarm import ALARM_EXIT_STATUS, AlarmRule, AlarmState, CusumRule
from gacrystal.monitoring.clock import TIME_SOURCES, FrameClock, read_times, wanted_source
from gacrystal.monitoring.monitor import Monitor
from gacrystal.monitoring.records import FrameRecord, FrameSummary, ParticleRecord
from gacrystal.monitoring.watch import in_groups, new_frames, watch

__all__ = ["ALARM_EXIT_STATUS", "AlarmRule", "AlarmState", "CusumRule", "FrameClock",
           "FrameRecord", "FrameSummary", "Monitor", "ParticleRecord", "TIME_SOURCES",
           "in_groups", "new_frames", "read_times", "wanted_source", "watch"]
