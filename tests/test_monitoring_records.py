"""The typed records (gacrystal/monitoring/records.py): their rows are the tables' columns, and
a row written and read back gives the same record."""
import datetime as dt

from gacrystal.files import append_csv
from gacrystal.monitoring import AlarmState, FrameRecord, FrameSummary, ParticleRecord
from gacrystal.monitoring.candidates import equivalent_diameter
from gacrystal.monitoring.records import FRAME_COLUMNS, PARTICLE_COLUMNS
from gacrystal.monitoring.tables import iter_rows

STATE = AlarmState(4.25, 4.0, "CUSUM", "CUSUM of the PG count", fired_at=0, fired_now=True)


def test_records_written_and_read_back_are_the_same_records(tmp_path):
    when = dt.datetime(2026, 3, 1, 14, 32, 5, 250000)
    frame = FrameRecord("frame (1).png", when, 12345.6789, "exif", "good", "",
                        FrameSummary(9, 6, 2, 1, 0.25, 0.07, 0.59, 0.0123456789), 107.25, 128.7,
                        STATE, False, "alarm")
    untimed = FrameRecord("frame (2).png", None, 10.0, "order", "good", "",
                          FrameSummary(0, 0, 0, 0, None, None, None, 0.0), None, None, STATE,
                          False, "")
    dark = FrameRecord("frame (3).png", None, 20.0, "order", "dark", "mean grey 3.1 (below 20)",
                       FrameSummary.nothing(), None, None, STATE, True, "probe blind")
    particle = ParticleRecord("frame (1).png", when, 12345.6789, 1, "blob", 10, 20, 130, 140,
                              9000.0, equivalent_diameter(9000.0), None, None, 4.5, "PG",
                              0.912345678, 0.912345678, 0.25, True, "")
    unclassified = ParticleRecord("frame (1).png", when, 12345.6789, 2, "blob", 0, 0, 130, 130,
                                  5000.0, equivalent_diameter(5000.0), 20000.0, 160.0, 1.0,
                                  "UNKNOWN", None, None, None, True, "out of focus")
    assert list(frame.row()) == FRAME_COLUMNS and list(particle.row()) == PARTICLE_COLUMNS
    append_csv(tmp_path / "frames.csv", [frame.row(), untimed.row(), dark.row()], FRAME_COLUMNS)
    append_csv(tmp_path / "particles.csv", [particle.row(), unclassified.row()], PARTICLE_COLUMNS)
    replayed = iter([STATE, STATE, STATE])
    fed = []  # what the alarm was given on the replay: a frame not good gives it nothing
    back = [FrameRecord.from_row(row, lambda summary, elapsed_s: fed.append(summary) or
                                 next(replayed)) for row in iter_rows(tmp_path / "frames.csv")]
    assert back == [frame, untimed, dark] and fed[2] is None and fed[0] == frame.summary
    assert next(r for r in iter_rows(tmp_path / "frames.csv") if r["quality"] == "dark")["pg"] == ""
    assert [ParticleRecord.from_row(row) for row in iter_rows(tmp_path / "particles.csv")] == [
        particle, unclassified]
    row = next(iter_rows(tmp_path / "frames.csv"))
    assert (row["time"], row["cusum"], row["alarm"], row["event"]) == (
        "2026-03-01 14:32:05.250000", "4.25", "1", "alarm")
