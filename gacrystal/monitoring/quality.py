"""Can the probe see? Each frame's quality before anything is counted in it.

    judge = QualityJudge()
    verdict = judge.judge(grey)              # Quality("good", "", ...) or ("dark", "mean grey 6.1")
    verdict = judge.judge_measures(measure(grey))   # the same, measured elsewhere (a worker)

A frame the probe could not see through counts as a frame with no PG and pulls the alarm down
exactly when nothing can be seen. So every frame gets a quality first, with the measure that
decided it; a frame that is not good stays in frames.csv with its reason and feeds neither the
alarm nor the fractions, and several in a row are a "probe blind" event. In the order checked:

- duplicate: the same pixels as the frame before (a camera or a copy delivering one frame twice);
- dark: the mean grey level below DARK_MEAN (probe out of the slurry, lamp off);
- saturated: more than SATURATED_SHARE of the pixels at 250 or above (lamp too bright, a bubble
  on the window);
- out of focus: the frame's detail (the mean band-pass response at 1-2 px) below BLUR_SHARE of
  the median of the last good frames, and its sharpness (that response over the one at 2-4 px: a
  blur takes the fine band first) below SHARPNESS_SHARE of theirs: both, since a scene with
  less in it has less detail but no less sharpness;
- fouled window: a deposit on the window stays where it is while the slurry moves. Over the last
  FOUL_WINDOW frames (shrunk by FOUL_SCALE), the share of the view whose grey level barely changes
  (its temporal spread below STATIC_SHARE of the view's median temporal spread, in patches of
  at least 2 x 2 cells) above FOULED_AREA.

A frame's own measures (`measure`: a digest of its grey levels, its mean, the share saturated,
detail, sharpness and the frame shrunk by FOUL_SCALE) need only that frame; the verdict
(`QualityJudge.judge_measures`) needs the frames before it, in order. So a cluster worker measures
and the monitor judges, in the same code as one process.

The thresholds are relative where the probe's own level matters (focus, motion) and absolute
only for what is physical (a black or a white frame). They were set on synthetic frames
(bench/quality.py) and are stated there with their detection rates.
"""
from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

GOOD = "good"
FOULED = "fouled window"
DARK_MEAN = 20.0  # grey levels
SATURATED_SHARE = 0.4  # of the pixels at >= 250
BLUR_SHARE = 0.65  # of the recent good frames' median detail (synthetic slurries: 0.75 at least)
SHARPNESS_SHARE = 0.8  # and of their median sharpness (synthetic slurries: 0.82 at least)
FOCUS_MEMORY = 10  # good frames whose detail the focus check compares with
FOUL_WINDOW = 8  # frames
FOUL_SCALE = 8  # the frames are shrunk by this much for the fouling check
STATIC_SHARE = 0.25  # a cell is static when its temporal spread is below this share of the median
FOULED_AREA = 0.0015  # of the view static over FOUL_WINDOW frames: fouled (moving slurry: under 0.08%)
BLIND_AFTER = 3  # frames in a row that are not good: the probe is blind


@dataclass(frozen=True)
class Quality:
    """A frame's quality: GOOD or why not, the measure that decided it (in words), and the
    figures frames.csv keeps."""
    verdict: str
    measure: str = ""
    detail: float | None = None
    static_share: float | None = None

    @property
    def good(self) -> bool:
        return self.verdict == GOOD


def detail_of(grey: np.ndarray) -> tuple[float, float]:
    """(detail, sharpness) of a frame: the mean absolute band-pass response at 1-2 px
    (difference of Gaussians: granules, needles and edges score high, a blurred frame low), and
    its ratio to the response at 2-4 px (a blur takes the fine band first, whatever the scene)."""
    from scipy.ndimage import gaussian_filter
    g1, g2, g4 = (gaussian_filter(grey, sigma) for sigma in (1.0, 2.0, 4.0))
    fine, coarse = float(np.abs(g1 - g2).mean()), float(np.abs(g2 - g4).mean())
    return fine, fine / max(coarse, 1e-6)


def shrunk(grey: np.ndarray, scale: int) -> np.ndarray:
    h, w = grey.shape[0] // scale * scale, grey.shape[1] // scale * scale
    return grey[:h, :w].reshape(h // scale, scale, w // scale, scale).mean(axis=(1, 3))


@dataclass(frozen=True)
class Measures:
    """What the judge needs of one frame, measured on that frame alone: a digest of its grey
    levels (the duplicate check), its mean grey level, the share of its pixels at 250 or above,
    and, for a frame neither dark nor saturated, its detail and sharpness (detail_of) and the
    frame shrunk by FOUL_SCALE (the fouling check)."""
    digest: str
    mean: float
    saturated: float
    detail: float | None = None
    sharpness: float | None = None
    small: np.ndarray | None = None

    @property
    def seen_through(self) -> bool:
        """Neither dark nor saturated: the frame may be good, depending on those before it."""
        return self.detail is not None


def measure(grey: np.ndarray) -> Measures:
    """The Measures of a frame's grey levels."""
    grey = np.asarray(grey, np.float32)
    digest = hashlib.sha256(repr(grey.shape).encode() + grey.tobytes()).hexdigest()
    mean, saturated = float(grey.mean()), float((grey >= 250).mean())
    if mean < DARK_MEAN or saturated > SATURATED_SHARE:
        return Measures(digest, mean, saturated)
    return Measures(digest, mean, saturated, *detail_of(grey), shrunk(grey, FOUL_SCALE))


class QualityJudge:
    """Judges frames in order; keeps the little history the relative checks need."""

    def __init__(self):
        self.details: deque[tuple[float, float]] = deque(maxlen=FOCUS_MEMORY)
        self.recent: deque[np.ndarray] = deque(maxlen=FOUL_WINDOW)
        self.previous: str | None = None  # the digest of the frame before

    def judge(self, grey: np.ndarray) -> Quality:
        return self.judge_measures(measure(grey))

    def judge_measures(self, m: Measures) -> Quality:
        """The verdict on the next frame, from its Measures."""
        duplicate, self.previous = m.digest == self.previous, m.digest
        if duplicate:
            return Quality("duplicate", "the same pixels as the frame before")
        if m.mean < DARK_MEAN:
            return Quality("dark", f"mean grey {m.mean:.1f} (below {DARK_MEAN:g})")
        if m.saturated > SATURATED_SHARE:
            return Quality("saturated", f"{m.saturated:.0%} of the pixels at 250 or above")
        detail, sharpness = m.detail, m.sharpness
        if len(self.details) >= 3:
            usual_detail, usual_sharpness = np.median(np.array(self.details), axis=0)
            if detail < BLUR_SHARE * usual_detail and sharpness < SHARPNESS_SHARE * usual_sharpness:
                return Quality("out of focus", f"detail {detail:.2f}, sharpness {sharpness:.2f} "
                               f"(recent frames {usual_detail:.2f}, {usual_sharpness:.2f})",
                               detail=detail)
        self.remember_view(m.small)
        static = self.static_share()
        if static is not None and static > FOULED_AREA:
            return Quality(FOULED, f"{static:.1%} of the view unchanged over "
                           f"{FOUL_WINDOW} frames", detail=detail, static_share=static)
        self.details.append((detail, sharpness))
        return Quality(GOOD, "", detail=detail, static_share=static)

    def recall(self, verdicts: list[str], measures_of: Callable[[int], Measures | None]):
        """Takes up the history a judge had after frames with these verdicts, in order (a run
        going on: frames.csv keeps them), from the Measures of the few frames it kept (those
        `kept_frames` names; measures_of(index) is None for a frame no longer readable, which
        is then left out)."""
        seen, focus, last = kept_frames(verdicts)
        measures = {i: measures_of(i) for i in sorted(seen | focus | {last} - {None})}
        for i, m in measures.items():
            if m is not None and m.seen_through:
                if i in seen:
                    self.remember_view(m.small)
                if i in focus:
                    self.details.append((m.detail, m.sharpness))
        self.previous = measures[last].digest if measures.get(last) is not None else None

    def remember_view(self, small: np.ndarray):
        """Keeps a frame for the fouled-window check. A frame of another size than the ones
        before (the probe's resolution was changed) starts that history again."""
        if self.recent and self.recent[-1].shape != small.shape:
            self.recent.clear()
        self.recent.append(small)

    def static_share(self) -> float | None:
        """The share of the view that barely changed over the last FOUL_WINDOW frames (None
        until there are that many)."""
        if len(self.recent) < FOUL_WINDOW:
            return None
        from scipy import ndimage
        stack = np.stack(self.recent)
        spread = stack.std(axis=0)
        static = spread < STATIC_SHARE * np.median(spread)
        # A deposit is a patch; cells still by chance are scattered (frames made of a handful of
        # real crops had 0.16% of them, one here and one there): only whole 2 x 2 blocks count.
        return float(ndimage.binary_opening(static, structure=np.ones((2, 2), bool)).mean())


def kept_frames(verdicts: list[str]) -> tuple[set[int], set[int], int | None]:
    """Which of the frames judged so far a judge keeps: the last FOUL_WINDOW seen past the focus
    check (good or fouled), the last FOCUS_MEMORY good ones, and the last (duplicates)."""
    past_focus = [i for i, v in enumerate(verdicts) if v in (GOOD, FOULED)]
    good = [i for i, v in enumerate(verdicts) if v == GOOD]
    return (set(past_focus[-FOUL_WINDOW:]), set(good[-FOCUS_MEMORY:]),
            len(verdicts) - 1 if verdicts else None)
