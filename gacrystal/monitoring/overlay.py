"""A frame's overlay: its candidates' boxes coloured by label, and a caption with its counts."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gacrystal.images import UNKNOWN
from gacrystal.monitoring.outputs import LATEST, OVERLAYS  # noqa: F401
from gacrystal.monitoring.records import FrameRecord, ParticleRecord, time_text

COLOURS = {"PG": (230, 40, 40), "CEX": (40, 200, 90), UNKNOWN: (255, 170, 0)}
NOT_COUNTED = (150, 150, 150)


def draw_overlay(rgb: np.ndarray, frame: FrameRecord, particles: list[ParticleRecord], path: Path):
    """The frame with each candidate's box: PG red, CEX green, UNKNOWN orange, not counted grey
    (thin); blobs get their P(PG) written beside the box; a caption with the frame's counts."""
    from PIL import Image, ImageDraw, ImageFont
    image = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(14, rgb.shape[0] // 50))
    for p in sorted(particles, key=lambda p: (p.counted, p.found_by == "blob")):
        colour = COLOURS.get(p.label, NOT_COUNTED) if p.counted else NOT_COUNTED
        box = (p.x, p.y, p.x + p.w - 1, p.y + p.h - 1)
        wide = p.found_by == "blob" and p.counted
        draw.rectangle(box, outline=colour, width=3 if wide else 1)
        if wide:
            text = p.label if p.p_pg is None else f"{p.label} {p.p_pg:.2f}"
            draw.text((p.x + 4, p.y + 3), text, fill=colour, font=font)
    s = frame.summary
    fraction = "-" if s.pg_fraction is None else f"{100 * s.pg_fraction:.1f}%"
    when = time_text(frame.time) or f"{frame.elapsed_s:.0f} s"
    caption = (f"{frame.frame}  {when}  " + (f"CEX {s.cex}  PG {s.pg}  UNKNOWN {s.unknown}  "
                                             f"PG fraction {fraction}" if frame.good else
                                             f"{frame.quality.upper()}: not counted")
               + ("  ALARM" if frame.alarm.fired else "") + ("  PROBE BLIND" if frame.blind else ""))
    left, top, right, bottom = draw.textbbox((4, 2), caption, font=font)
    draw.rectangle((0, 0, right + 4, bottom + 4), fill=(0, 0, 0))
    draw.text((4, 2), caption, fill=(255, 255, 255), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
