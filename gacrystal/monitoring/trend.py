"""trend.png: the PG fraction with its interval, the counts, and the alarm's statistic against
its threshold, over the minutes since the first frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gacrystal.images import UNKNOWN
from gacrystal.monitoring.records import FrameRecord
from gacrystal.report import pyplot

TREND = "trend.png"


def _number(value) -> float:
    return np.nan if value is None else value


def plot_trend(frames: list[FrameRecord], path: Path):
    """Three panels sharing the time axis; a red line where the alarm fired. The alarm panel
    shows what the frames' AlarmState says (statistic, threshold, names)."""
    plt = pyplot()
    minutes = np.array([f.elapsed_s for f in frames]) / 60
    fraction = np.array([_number(f.summary.pg_fraction) for f in frames], float) * 100
    low = np.array([_number(f.summary.pg_fraction_low) for f in frames], float) * 100
    high = np.array([_number(f.summary.pg_fraction_high) for f in frames], float) * 100
    fired = [m for m, f in zip(minutes, frames) if f.alarm.fired_now]
    alarm = frames[-1].alarm
    fig, (share, counts, statistic) = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True,
                                                   gridspec_kw={"height_ratios": [3, 2, 1.4]})
    share.fill_between(minutes, low, high, color="tab:red", alpha=0.2, label="95% interval")
    share.plot(minutes, fraction, ".-", color="tab:red", label="PG fraction of regions")
    share.set(ylabel="PG (%)", ylim=(0, max(5.0, np.nanmax(high, initial=0) * 1.1)))
    for name, colour in (("cex", "tab:green"), ("pg", "tab:red"), ("unknown", "tab:orange")):
        counts.plot(minutes, [getattr(f.summary, name) for f in frames], ".-", color=colour,
                    label=name.upper() if name != "unknown" else UNKNOWN)
    counts.set(ylabel="regions per frame")
    statistic.plot(minutes, [f.alarm.statistic for f in frames], ".-", color="black",
                   label=alarm.label)
    statistic.axhline(alarm.threshold, color="tab:red", linestyle="--",
                      label=f"alarm threshold {alarm.threshold}")
    statistic.set(ylabel=alarm.name, xlabel="minutes since the first frame")
    for ax in (share, counts, statistic):
        for m in fired:
            ax.axvline(m, color="tab:red", linewidth=2,
                       label="alarm" if ax is share else None)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    title = "PG monitoring" + (f": alarm at {fired[0]:.1f} min" if fired else ": no alarm")
    share.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
