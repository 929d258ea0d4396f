"""The monitor's records, typed until they are written: one per frame (`FrameRecord`, a row of
frames.csv, with its `FrameSummary` and `AlarmState`) and one per candidate region
(`ParticleRecord`, a row of particles.csv). `row()` gives the cells to write, in the tables'
columns; `from_row` reads a written row back (a resumed run)."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields
from typing import Callable

from gacrystal.monitoring.alarm import AlarmState

PARTICLE_COLUMNS = ["frame", "time", "elapsed_s", "particle", "found_by", "x", "y", "w", "h",
                    "area_px", "diameter_px", "area_um2", "diameter_um", "sharpness", "label",
                    "p_pg", "confidence", "ood_score", "counted", "note"]
FRAME_COLUMNS = ["frame", "time", "elapsed_s", "time_source", "candidates", "cex", "pg",
                 "unknown", "pg_fraction", "pg_fraction_low", "pg_fraction_high",
                 "pg_area_fraction", "cusum", "alarm", "event"]


def time_text(when: dt.datetime | None) -> str:
    """A frame's time as the tables write it ("" when it has none: source order or seconds)."""
    return when.isoformat(sep=" ") if when else ""


def read_time(text: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def number(text: str) -> float | None:
    return float(text) if text else None


@dataclass(slots=True)
class FrameSummary:
    """The counted regions of one frame: counts by label, the PG fraction PG / (CEX + PG) with its
    95% Wilson interval (None without CEX or PG), and the PG regions' share of the frame's area."""
    candidates: int
    cex: int
    pg: int
    unknown: int
    pg_fraction: float | None
    pg_fraction_low: float | None
    pg_fraction_high: float | None
    pg_area_fraction: float

    @classmethod
    def from_row(cls, row: dict) -> FrameSummary:
        counts = [int(row[k]) for k in ("candidates", "cex", "pg", "unknown")]
        shares = [number(row[k]) for k in ("pg_fraction", "pg_fraction_low", "pg_fraction_high")]
        return cls(*counts, *shares, float(row["pg_area_fraction"]))


@dataclass(slots=True)
class FrameRecord:
    """One frame done: its name, time (None for source order or a table in seconds), seconds
    since the first frame, the time source used, its summary and the alarm's state after it."""
    frame: str
    time: dt.datetime | None
    elapsed_s: float
    time_source: str
    summary: FrameSummary
    alarm: AlarmState

    def row(self) -> dict:
        return {"frame": self.frame, "time": time_text(self.time), "elapsed_s": self.elapsed_s,
                "time_source": self.time_source, **asdict(self.summary),
                "cusum": self.alarm.statistic, "alarm": int(self.alarm.fired),
                "event": "alarm" if self.alarm.fired_now else ""}

    @classmethod
    def from_row(cls, row: dict, alarm: Callable[[FrameSummary], AlarmState]) -> FrameRecord:
        """A frames.csv row; its alarm state is alarm(summary) (the rule replayed), not its
        written columns."""
        summary = FrameSummary.from_row(row)
        return cls(row["frame"], read_time(row["time"]), float(row["elapsed_s"]),
                   row["time_source"], summary, alarm(summary))


@dataclass(slots=True)
class ParticleRecord:
    """One candidate region of a frame: where it is and how large (px; µm with the probe's
    scale), what found it ("blob" or "tile"), its label, P(PG), confidence and ood_score (None
    where it was not classified), whether it counts and, where it does not, why (note)."""
    frame: str
    time: dt.datetime | None
    elapsed_s: float
    particle: int
    found_by: str
    x: int
    y: int
    w: int
    h: int
    area_px: float
    diameter_px: float | None
    area_um2: float | None
    diameter_um: float | None
    sharpness: float | None
    label: str
    p_pg: float | None
    confidence: float | None
    ood_score: float | None
    counted: bool
    note: str

    def row(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in fields(self)},
                "time": time_text(self.time), "counted": int(self.counted)}

    @classmethod
    def from_row(cls, row: dict) -> ParticleRecord:
        return cls(row["frame"], read_time(row["time"]), float(row["elapsed_s"]),
                   int(row["particle"]), row["found_by"],
                   *(int(row[k]) for k in ("x", "y", "w", "h")), float(row["area_px"]),
                   *(number(row[k]) for k in ("diameter_px", "area_um2", "diameter_um",
                                               "sharpness")),
                   row["label"], *(number(row[k]) for k in ("p_pg", "confidence", "ood_score")),
                   row["counted"] == "1", row["note"])
