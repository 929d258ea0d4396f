"""trend.png: the PG fraction with its interval, the counts, the PG D50, and the alarm's statistic
against its threshold, over the minutes since the first frame; frames that were not good shaded."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gacrystal.images import UNKNOWN
from gacrystal.monitoring.outputs import TREND  # noqa: F401
from gacrystal.monitoring.records import FrameRecord
from gacrystal.pictures import pyplot


def _number(value) -> float:
    return np.nan if value is None else value


def plot_trend(frames: list[FrameRecord], path: Path):
    """Four panels sharing the time axis: the PG fraction, the counts, the PG D50 over the size
    window, and the alarm's statistic against its threshold (what the frames' AlarmState says);
    a red line where the alarm fired, grey bands over frames that were not good (darker where
    the probe was blind)."""
    plt = pyplot()
    minutes = np.array([f.elapsed_s for f in frames]) / 60
    fraction = np.array([_number(f.summary.pg_fraction) for f in frames], float) * 100
    low = np.array([_number(f.summary.pg_fraction_low) for f in frames], float) * 100
    high = np.array([_number(f.summary.pg_fraction_high) for f in frames], float) * 100
    fired = [m for m, f in zip(minutes, frames) if f.alarm.fired_now]
    alarm = frames[-1].alarm
    in_um = any(f.pg_d50_um is not None for f in frames)
    d50 = [_number(f.pg_d50_um if in_um else f.pg_d50_px) for f in frames]
    fig, (share, counts, sizes, statistic) = plt.subplots(
        4, 1, figsize=(9, 9), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1.4, 1.4]})
    share.fill_between(minutes, low, high, color="tab:red", alpha=0.2, label="95% interval")
    share.plot(minutes, fraction, ".-", color="tab:red", label="PG fraction of regions")
    share.set(ylabel="PG (%)", ylim=(0, max(5.0, np.nanmax(high, initial=0) * 1.1)))
    for name, colour in (("cex", "tab:green"), ("pg", "tab:red"), ("unknown", "tab:orange")):
        counts.plot(minutes, [_number(getattr(f.summary, name)) for f in frames], ".-",
                    color=colour, label=name.upper() if name != "unknown" else UNKNOWN)
    counts.set(ylabel="regions per frame")
    sizes.plot(minutes, d50, ".-", color="tab:purple", label="PG D50 (number), size window")
    sizes.set(ylabel="µm" if in_um else "px")
    statistic.plot(minutes, [f.alarm.statistic for f in frames], ".-", color="black",
                   label=alarm.label)
    if np.isfinite(alarm.threshold):  # not yet chosen while the baseline is being learnt
        statistic.axhline(alarm.threshold, color="tab:red", linestyle="--",
                          label=f"alarm threshold {alarm.threshold:.3g}")
    statistic.set(ylabel=alarm.name, xlabel="minutes since the first frame")
    step = float(np.median(np.diff(minutes))) if len(minutes) > 1 else 1.0
    for ax in (share, counts, sizes, statistic):
        for m, f in zip(minutes, frames):
            if not f.good:
                ax.axvspan(m - step / 2, m + step / 2, color="grey",
                           alpha=0.45 if f.blind else 0.2, linewidth=0)
        for m in fired:
            ax.axvline(m, color="tab:red", linewidth=2,
                       label="alarm" if ax is share else None)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    title = "PG monitoring" + (f": alarm at {fired[0]:.1f} min" if fired else ": no alarm")
    if any(f.blind for f in frames):
        title += "; probe blind at times (dark bands)"
    share.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
