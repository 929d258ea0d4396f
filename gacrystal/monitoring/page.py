"""monitor.html, the self-contained page of a run: the alarm or a blind probe, the trend, the
latest frame (while watching: the page then reloads itself), thumbnails of the latest overlays
(and the alarm's), the PG detections and uncertain regions to mark right or wrong
(`ReviewPicks`; the marks are saved as corrections.csv by the page itself, offline), the frames
and the settings."""
from __future__ import annotations

import heapq
from html import escape
from pathlib import Path

from gacrystal.corrections import VERDICTS
from gacrystal.monitoring.outputs import CORRECTIONS, LATEST, PAGE, TREND  # noqa: F401
from gacrystal.monitoring.records import FRAME_COLUMNS, FrameRecord, ParticleRecord
from gacrystal.report import REPORT_STYLE, data_uri, html_table

MARKS = VERDICTS[:3]  # right, wrong, neither: the page's buttons (a class name is for the CSV)
REVIEW_COUNT = 8  # PG detections shown per kind (highest P(PG); most uncertain)
THUMBNAIL_WIDTH = 360
PAGE_OVERLAYS = 24  # the latest overlays the page shows (the alarm's as well); all stay on disk


class ReviewPicks:
    """The counted PG detections with the highest P(PG), and the counted CEX/PG regions whose
    P(PG) lies nearest 0.5: `count` of each, kept as particles arrive (memory flat in the run's
    length)."""

    def __init__(self, count: int = REVIEW_COUNT):
        self.count, self.highest, self.uncertain, self.seen = count, [], [], 0

    def add(self, particle: ParticleRecord):
        self.seen += 1
        if not particle.counted or particle.p_pg is None:
            return
        p = particle.p_pg
        if particle.label == "PG":
            self._keep(self.highest, (p, self.seen, particle))
        self._keep(self.uncertain, (-abs(p - 0.5), self.seen, particle))

    def _keep(self, heap: list, item):
        heapq.heappush(heap, item)
        if len(heap) > self.count:
            heapq.heappop(heap)

    def rows(self) -> tuple[list[ParticleRecord], list[ParticleRecord]]:
        return ([r for *_, r in sorted(self.highest, reverse=True)],
                [r for *_, r in sorted(self.uncertain, reverse=True)])


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def shown_cells(row: dict, columns: list[str]) -> dict:
    """One frames.csv row as the page shows it: numbers to 4 significant digits (the CSV keeps
    10), whole seconds from 10000 s on, nothing for None."""
    def shown(value):
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.0f}" if abs(value) >= 10000 else f"{value:.4g}"
        return value
    return {column: shown(row[column]) for column in columns}


def thumbnail(image, width: int = THUMBNAIL_WIDTH):
    image = image.copy()
    image.thumbnail((width, width))
    return image


def particle_cards(particles: list[ParticleRecord], frames_dir: Path, marks: bool = True) -> str:
    """Thumbnails of these regions with their facts; with marks, three choices each (right,
    wrong: the other class, neither: not a crystal) that the page's button saves as
    corrections.csv (gacrystal.monitoring.corrections)."""
    from PIL import Image
    from gacrystal.images import ImageError, read_rgb
    if not particles:
        return "<p>None.</p>"
    cards = []
    for p in particles:
        try:
            crop = Image.fromarray(read_rgb(frames_dir / p.frame)[p.y:p.y + p.h, p.x:p.x + p.w])
            picture = f'<img alt="crop" src="{data_uri(thumbnail(crop, 115))}">'
        except ImageError:
            picture = "(frame no longer readable)"
        choice = ""
        if marks:
            key = escape(f"{p.frame}#{p.particle}")
            data = escape(",".join(str(v) for v in (p.x, p.y, p.w, p.h, p.label, p.p_pg)))
            choice = "".join(
                f'<label><input type="radio" name="{key}" value="{verdict}" data-box="{data}">'
                f"{verdict}</label> " for verdict in MARKS)
        cards.append(f'<div class="card">{picture}<br>{escape(p.frame)} #{p.particle}'
                     f'<br>{p.label}, P(PG) {p.p_pg:.3f}, ood_score {_score(p.ood_score)}'
                     f'<br>{choice}</div>')
    return f'<div class="gallery">{"".join(cards)}</div>'


# The page's button writes corrections.csv from the marks, in the browser (no server, offline).
SAVE_SCRIPT = r"""<script>
function saveCorrections() {
  const head = "frame,particle,x,y,w,h,predicted,p_pg,verdict";
  const quote = s => /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  const rows = [], seen = new Set();
  for (const input of document.querySelectorAll('input[type=radio]')) {
    if (seen.has(input.name)) continue;
    const picked = document.querySelector('input[name="' + CSS.escape(input.name) + '"]:checked');
    seen.add(input.name);
    const cut = input.name.lastIndexOf('#');
    rows.push([quote(input.name.slice(0, cut)), input.name.slice(cut + 1),
               input.dataset.box, picked ? picked.value : ''].join(','));
  }
  const blob = new Blob([head + "\n" + rows.join("\n") + "\n"], {type: 'text/csv'});
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = 'corrections.csv';
  link.click();
}
</script>"""


def state_banner(frames: list[FrameRecord], alarm_text: str) -> str:
    """The run's state in one line: the alarm, or the probe blind, or watching."""
    last = frames[-1] if frames else None
    if last is not None and last.blind:
        return (f'<p class="blind"><b>PROBE BLIND since the last frames ({escape(last.quality)}: '
                f"{escape(last.quality_measure)})</b>. {escape(alarm_text)}</p>")
    return f"<p><b>{escape(alarm_text)}</b></p>"


def write_page(out: Path, frames: list[FrameRecord], settings: dict, alarm_text: str,
               frames_dir: Path, overlays: Path, picks: ReviewPicks, figures=None,
               refresh_s: int = 0, adapted: str = "") -> Path:
    """monitor.html: the state (alarm, probe blind) and what the alarm promises (figures: its
    AlarmFigures, once learnt), the latest frame's overlay (while watching), the trend, the PG
    detections and the most uncertain regions to mark right or wrong, thumbnails of the latest
    overlays (and the alarm's), a table of frames (as frames.csv writes them) and the settings.
    Every picture embedded, so the page can be mailed, and their number bounded, so a long watch
    keeps it small; with refresh_s the page reloads itself that often (a watch's live page).
    adapted: what the run's decision was fitted on (--adapt), said under the alarm's figures."""
    from PIL import Image
    highest, uncertain = picks.rows()
    shots = sorted((p for p in overlays.glob("*.png") if p.name != LATEST),
                   key=lambda p: p.stat().st_mtime) if overlays.is_dir() else []
    alarm = next((f.frame for f in frames if f.alarm.fired_now), None)
    shown = [p for p in shots if alarm and p.stem == Path(alarm).stem]
    shown += [p for p in shots[-PAGE_OVERLAYS:] if p not in shown]
    thumbs = []
    for shot in shown:
        with Image.open(shot) as image:
            thumbs.append(f'<a href="{escape(overlays.name)}/{escape(shot.name)}"><img '
                          f'alt="overlay" src="{data_uri(thumbnail(image))}"></a>')
    latest = ""
    if refresh_s and (overlays / LATEST).is_file():
        with Image.open(overlays / LATEST) as image:
            latest = (f'<h2>Latest frame: {escape(frames[-1].frame)}</h2><img alt="latest" '
                      f'src="{data_uri(thumbnail(image, 900))}" style="max-width:100%">')
    table_rows = [shown_cells(f.row(), FRAME_COLUMNS) for f in frames]
    trend = out / TREND
    reload = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    live = (f"<p>Watching: this page reloads every {refresh_s} s.</p>" if refresh_s else "")
    adapted_line = f"<p>{escape(adapted[0].upper() + adapted[1:])}.</p>" if adapted else ""
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8">{reload}<title>PG monitoring</title>
<style>{REPORT_STYLE}.shots img{{width:{THUMBNAIL_WIDTH}px;margin:3px}}
.blind{{background:#555;color:#fff;padding:.5em}}label{{margin-right:.4em}}
.wide{{overflow-x:auto}}.wide td{{white-space:nowrap}}</style>{SAVE_SCRIPT}
</head><body>
<h1>PG monitoring: {escape(str(frames_dir))}</h1>
{state_banner(frames, alarm_text)}{live}
<p>{escape(figures.describe()) if figures else "The alarm is still learning its baseline."}</p>
{adapted_line}
<p>{len(frames)} frames. The counts come from a crop classifier applied to candidate regions
(bright blobs and a tile grid over the needle field); check the overlays below before trusting
them on your own frames.</p>
{latest}
{f'<img alt="trend" src="{data_uri(trend)}" style="max-width:100%">' if trend.exists() else ''}
<h2>Mark the regions below</h2><p>right, wrong (it is the other class) or neither (not a crystal:
a bubble, debris); then <button onclick="saveCorrections()">save corrections.csv</button> and
export the crops for training: <code>python GAmonitor.py --out {escape(str(out))} --export_crops
DIR --corrections SAVED.csv</code>, where SAVED.csv is the file the button saved (usually in your
downloads folder); or fill in the verdict column of <code>{escape(str(out / CORRECTIONS))}</code>,
beside this page, and pass that.</p>
<h2>PG detections with the highest P(PG)</h2>{particle_cards(highest, frames_dir)}
<h2>The most uncertain regions (P(PG) nearest 0.5)</h2>{particle_cards(uncertain, frames_dir)}
<h2>Overlays</h2><p>Boxes: PG red, CEX green, UNKNOWN orange, not counted grey.
{len(shown)} of the {len(shots)} overlays in {escape(overlays.name)}/ (the alarm's and the latest).</p>
<div class="shots">{''.join(thumbs) or 'None written.'}</div>
<h2>Frames</h2><div class="wide">{html_table(table_rows, FRAME_COLUMNS)}</div>
<h2>Settings</h2>{html_table([{"setting": k, "value": str(v)} for k, v in settings.items()],
                             ["setting", "value"])}
</body></html>"""
    path = out / PAGE
    from gacrystal.files import write_text_atomic
    write_text_atomic(path, page)
    return path
