"""The monitor's records, typed until they are written: one per frame (`FrameRecord`, a row of
frames.csv, with its `FrameSummary` and `AlarmState`) and one per candidate region
(`ParticleRecord`, a row of particles.csv). `row()` gives the cells to write, in the tables'
columns; `from_row` reads a written row back (a resumed run)."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields

from gacrystal.monitoring.candidates import equivalent_diameter
from gacrystal.monitoring.quality import GOOD

PARTICLE_COLUMNS = ["frame", "time", "elapsed_s", "particle", "found_by", "x", "y", "w", "h",
                    "area_px", "diameter_px", "area_um2", "diameter_um", "sharpness", "label",
                    "p_pg", "confidence", "ood_score", "counted", "note"]
FRAME_COLUMNS = ["frame", "time", "elapsed_s", "time_source", "quality", "quality_measure",
                 "candidates", "cex", "pg", "unknown", "pg_fraction", "pg_fraction_low",
                 "pg_fraction_high", "pg_area_fraction", "pg_d50_px", "pg_d50_um", "cusum",
                 "alarm", "blind", "event"]


@dataclass(frozen=True, slots=True)
class AlarmState:
    """Where an alarm rule stands after a frame.

    Attributes:
        statistic: what the rule sums or tests (frames.csv's cusum column).
        threshold: the alarm fires when the statistic passes it.
        name, label: the statistic's short name (the trend's axis) and what it is (its legend).
        fired_at: the index of the frame where the alarm fired; None: it has not (yet).
        fired_now: it fired on this frame (frames.csv's event column).
    """
    statistic: float
    threshold: float
    name: str
    label: str
    fired_at: int | None = None
    fired_now: bool = False

    @property
    def fired(self) -> bool:
        return self.fired_at is not None


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
    95% Wilson interval (None without CEX or PG), and the PG regions' share of the frame's area.
    A frame that is not good counts nothing: every field None (`FrameSummary.nothing()`)."""
    candidates: int | None
    cex: int | None
    pg: int | None
    unknown: int | None
    pg_fraction: float | None
    pg_fraction_low: float | None
    pg_fraction_high: float | None
    pg_area_fraction: float | None

    @classmethod
    def nothing(cls) -> FrameSummary:
        return cls(None, None, None, None, None, None, None, None)

    @classmethod
    def from_row(cls, row: dict) -> FrameSummary:
        counts = [None if row[k] == "" else int(row[k])
                  for k in ("candidates", "cex", "pg", "unknown")]
        shares = [number(row[k]) for k in ("pg_fraction", "pg_fraction_low", "pg_fraction_high",
                                           "pg_area_fraction")]
        return cls(*counts, *shares)


@dataclass(slots=True)
class FrameRecord:
    """One frame done: its name, time (None for source order or a table in seconds), seconds
    since the first frame, the time source used, its quality (gacrystal.monitoring.quality:
    "good" or why not, and the measure that decided it), its summary (FrameSummary.nothing() for
    a frame that is not good: nothing in it is counted), the PG D50 over the size window (gacrystal.monitoring.
    sizes; None without PG), the alarm's state after it, whether the probe is blind, and what
    happened on it (event: "alarm", "probe blind", "probe sees again", joined by "; ")."""
    frame: str
    time: dt.datetime | None
    elapsed_s: float
    time_source: str
    quality: str
    quality_measure: str
    summary: FrameSummary
    pg_d50_px: float | None
    pg_d50_um: float | None
    alarm: AlarmState
    blind: bool
    event: str

    @property
    def good(self) -> bool:
        return self.quality == GOOD

    def row(self) -> dict:
        return {"frame": self.frame, "time": time_text(self.time), "elapsed_s": self.elapsed_s,
                "time_source": self.time_source, "quality": self.quality,
                "quality_measure": self.quality_measure, **asdict(self.summary),
                "pg_d50_px": self.pg_d50_px, "pg_d50_um": self.pg_d50_um,
                "cusum": self.alarm.statistic, "alarm": int(self.alarm.fired),
                "blind": int(self.blind), "event": self.event}

    @classmethod
    def from_row(cls, row: dict, alarm) -> FrameRecord:
        """A frames.csv row; its alarm state is alarm(summary, elapsed_s) for a good frame (the
        rule replayed), not its written columns; a frame that is not good fed no alarm:
        alarm(None, elapsed_s) gives the state as it stood."""
        summary = FrameSummary.from_row(row)
        elapsed = float(row["elapsed_s"])
        good = row["quality"] == GOOD
        return cls(row["frame"], read_time(row["time"]), elapsed, row["time_source"],
                   row["quality"], row["quality_measure"], summary, number(row["pg_d50_px"]),
                   number(row["pg_d50_um"]), alarm(summary if good else None, elapsed),
                   row["blind"] == "1", row["event"])


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
        """The record written in row; a blob's diameter_px computed again from its area (a whole
        number of px, written exactly), as when it was found: a resumed run's size window then
        holds the same numbers to the last bit."""
        area = float(row["area_px"])
        return cls(row["frame"], read_time(row["time"]), float(row["elapsed_s"]),
                   int(row["particle"]), row["found_by"],
                   *(int(row[k]) for k in ("x", "y", "w", "h")), area,
                   equivalent_diameter(area) if row["diameter_px"] else None,
                   *(number(row[k]) for k in ("area_um2", "diameter_um", "sharpness")),
                   row["label"], *(number(row[k]) for k in ("p_pg", "confidence", "ood_score")),
                   row["counted"] == "1", row["note"])
