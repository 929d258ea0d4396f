"""Pictures of a monitoring run: an overlay per frame (boxes coloured by label), trend.png (PG
fraction with its interval, counts, the alarm statistic) and the self-contained monitor.html."""
from __future__ import annotations

import heapq
from html import escape
from pathlib import Path

import numpy as np

from gacrystal.images import UNKNOWN
from gacrystal.report import REPORT_STYLE, pyplot, data_uri, html_table

COLOURS = {"PG": (230, 40, 40), "CEX": (40, 200, 90), UNKNOWN: (255, 170, 0)}
NOT_COUNTED = (150, 150, 150)
REVIEW_COUNT = 8  # PG detections shown per kind (highest P(PG); most uncertain)
THUMBNAIL_WIDTH = 360
PAGE_OVERLAYS = 24  # the latest overlays the page shows (the alarm's as well); all stay on disk


def draw_overlay(rgb: np.ndarray, frame: dict, particles: list[dict], path: Path):
    """The frame with each candidate's box: PG red, CEX green, UNKNOWN orange, not counted grey
    (thin); blobs get their P(PG) written beside the box; a caption with the frame's counts."""
    from PIL import Image, ImageDraw, ImageFont
    image = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(14, rgb.shape[0] // 50))
    for p in sorted(particles, key=lambda p: (p["counted"], p["found_by"] == "blob")):
        colour = COLOURS.get(p["label"], NOT_COUNTED) if p["counted"] else NOT_COUNTED
        box = (p["x"], p["y"], p["x"] + p["w"] - 1, p["y"] + p["h"] - 1)
        wide = p["found_by"] == "blob" and p["counted"]
        draw.rectangle(box, outline=colour, width=3 if wide else 1)
        if wide:
            text = p["label"] if p["p_pg"] is None else f"{p['label']} {p['p_pg']:.2f}"
            draw.text((p["x"] + 4, p["y"] + 3), text, fill=colour, font=font)
    fraction = "-" if frame["pg_fraction"] is None else f"{100 * frame['pg_fraction']:.1f}%"
    when = frame["time"] or f"{frame['elapsed_s']:.0f} s"
    caption = (f"{frame['frame']}  {when}  "
               f"CEX {frame['cex']}  PG {frame['pg']}  UNKNOWN {frame['unknown']}  "
               f"PG fraction {fraction}" + ("  ALARM" if frame.get("alarm") else ""))
    left, top, right, bottom = draw.textbbox((4, 2), caption, font=font)
    draw.rectangle((0, 0, right + 4, bottom + 4), fill=(0, 0, 0))
    draw.text((4, 2), caption, fill=(255, 255, 255), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _number(text, default=np.nan) -> float:
    return float(text) if text not in ("", None) else default


def plot_trend(frames: list[dict], threshold: float, path: Path):
    """PG fraction with its 95% interval, the counts, and the CUSUM against its threshold, over
    the minutes since the first frame; a red line where the alarm fired."""
    plt = pyplot()
    minutes = np.array([_number(f["elapsed_s"]) for f in frames]) / 60
    fraction = np.array([_number(f["pg_fraction"]) for f in frames]) * 100
    low = np.array([_number(f["pg_fraction_low"]) for f in frames]) * 100
    high = np.array([_number(f["pg_fraction_high"]) for f in frames]) * 100
    fired = [m for m, f in zip(minutes, frames) if f["event"] == "alarm"]
    fig, (share, counts, cusum) = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True,
                                               gridspec_kw={"height_ratios": [3, 2, 1.4]})
    share.fill_between(minutes, low, high, color="tab:red", alpha=0.2, label="95% interval")
    share.plot(minutes, fraction, ".-", color="tab:red", label="PG fraction of regions")
    share.set(ylabel="PG (%)", ylim=(0, max(5.0, np.nanmax(high, initial=0) * 1.1)))
    for name, colour in (("cex", "tab:green"), ("pg", "tab:red"), ("unknown", "tab:orange")):
        counts.plot(minutes, [int(f[name]) for f in frames], ".-", color=colour,
                    label=name.upper() if name != "unknown" else UNKNOWN)
    counts.set(ylabel="regions per frame")
    cusum.plot(minutes, [_number(f["cusum"]) for f in frames], ".-", color="black",
               label="CUSUM of the PG count")
    cusum.axhline(threshold, color="tab:red", linestyle="--", label=f"alarm threshold {threshold}")
    cusum.set(ylabel="CUSUM", xlabel="minutes since the first frame")
    for ax in (share, counts, cusum):
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


class ReviewPicks:
    """The counted PG detections with the highest P(PG), and the counted CEX/PG regions whose
    P(PG) lies nearest 0.5: `count` of each, kept as rows arrive (memory flat in the run's
    length)."""

    def __init__(self, count: int = REVIEW_COUNT):
        self.count, self.highest, self.uncertain, self.seen = count, [], [], 0

    def add(self, row: dict):
        self.seen += 1
        if str(row["counted"]) != "1" or row["p_pg"] in ("", None):
            return
        p = float(row["p_pg"])
        if row["label"] == "PG":
            self._keep(self.highest, (p, self.seen, row))
        self._keep(self.uncertain, (-abs(p - 0.5), self.seen, row))

    def _keep(self, heap: list, item):
        heapq.heappush(heap, item)
        if len(heap) > self.count:
            heapq.heappop(heap)

    def rows(self) -> tuple[list[dict], list[dict]]:
        return ([r for *_, r in sorted(self.highest, reverse=True)],
                [r for *_, r in sorted(self.uncertain, reverse=True)])


def _score(value) -> str:
    return "-" if value in ("", None) else f"{float(value):.2f}"


def thumbnail(image, width: int = THUMBNAIL_WIDTH):
    image = image.copy()
    image.thumbnail((width, width))
    return image


def particle_cards(rows: list[dict], frames_dir: Path) -> str:
    from PIL import Image
    from gacrystal.images import ImageError, read_rgb
    if not rows:
        return "<p>None.</p>"
    cards = []
    for row in rows:
        x, y, w, h = (int(row[k]) for k in ("x", "y", "w", "h"))
        try:
            crop = Image.fromarray(read_rgb(frames_dir / row["frame"])[y:y + h, x:x + w])
            picture = f'<img alt="crop" src="{data_uri(thumbnail(crop, 115))}">'
        except ImageError:
            picture = "(frame no longer readable)"
        cards.append(f'<div class="card">{picture}<br>{escape(row["frame"])} #{row["particle"]}'
                     f'<br>{row["label"]}, P(PG) {float(row["p_pg"]):.3f}, ood_score '
                     f'{_score(row["ood_score"])}</div>')
    return f'<div class="gallery">{"".join(cards)}</div>'


def write_page(out: Path, frames: list[dict], settings: dict, alarm_text: str, frames_dir: Path,
               overlays: Path, columns: list[str], picks: ReviewPicks) -> Path:
    """monitor.html: the settings, the alarm, the trend, a table of frames, thumbnails of the
    latest overlays (and the alarm's) and the PG detections to review; every picture embedded,
    so the page can be mailed, and their number bounded, so a long watch keeps it small."""
    from PIL import Image
    highest, uncertain = picks.rows()
    shots = sorted(overlays.glob("*.png"), key=lambda p: p.stat().st_mtime) if overlays.is_dir() else []
    alarm = next((f["frame"] for f in frames if f["event"] == "alarm"), None)
    shown = [p for p in shots if alarm and p.stem == Path(alarm).stem]
    shown += [p for p in shots[-PAGE_OVERLAYS:] if p not in shown]
    thumbs = []
    for shot in shown:
        with Image.open(shot) as image:
            thumbs.append(f'<a href="{escape(overlays.name)}/{escape(shot.name)}"><img '
                          f'alt="overlay" src="{data_uri(thumbnail(image))}"></a>')
    table_rows = [{k: row.get(k, "") for k in columns} for row in frames]
    trend = out / "trend.png"
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>PG monitoring</title>
<style>{REPORT_STYLE}.shots img{{width:{THUMBNAIL_WIDTH}px;margin:3px}}</style></head><body>
<h1>PG monitoring: {escape(str(frames_dir))}</h1>
<p><b>{escape(alarm_text)}</b></p>
<p>{len(frames)} frames. The counts come from a crop classifier applied to candidate regions
(bright blobs and a tile grid over the needle field); check the overlays below before trusting
them on your own frames.</p>
{f'<img alt="trend" src="{data_uri(trend)}" style="max-width:100%">' if trend.exists() else ''}
<h2>PG detections with the highest P(PG)</h2>{particle_cards(highest, frames_dir)}
<h2>The most uncertain regions (P(PG) nearest 0.5)</h2>{particle_cards(uncertain, frames_dir)}
<h2>Overlays</h2><p>Boxes: PG red, CEX green, UNKNOWN orange, not counted grey.
{len(shown)} of the {len(shots)} overlays in {escape(overlays.name)}/ (the alarm's and the latest).</p>
<div class="shots">{''.join(thumbs) or 'None written.'}</div>
<h2>Frames</h2>{html_table(table_rows, columns)}
<h2>Settings</h2>{html_table([{"setting": k, "value": str(v)} for k, v in settings.items()],
                             ["setting", "value"])}
</body></html>"""
    path = out / "monitor.html"
    from gacrystal.files import write_text_atomic
    write_text_atomic(path, page)
    return path
