"""monitor.html, the self-contained page of a run: the alarm or a blind probe, the trend, the
latest frame (while watching: the page then reloads itself), thumbnails of the latest overlays
(and the alarm's), the regions offered for review (gacrystal.monitoring.review: marked with one
key press each, CEX, PG or neither, with a counter; the marks survive the live page's reloads and
are saved as corrections.csv by the page itself, offline), the frames and the settings."""
from __future__ import annotations

from html import escape
from pathlib import Path

from gacrystal.monitoring.outputs import CORRECTIONS, LATEST, PAGE, TREND  # noqa: F401
from gacrystal.monitoring.records import FRAME_COLUMNS, FrameRecord
from gacrystal.pictures import REPORT_STYLE, data_uri, html_table

# The page's choices, each a verdict of gacrystal.corrections (what the region is), and its key.
MARKS = {"CEX": "c", "PG": "p", "neither": "n"}
THUMBNAIL_WIDTH = 360
PAGE_OVERLAYS = 24  # the latest overlays the page shows (the alarm's as well); all stay on disk


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


def particle_cards(offered: list[tuple], frames_dir: Path) -> str:
    """Thumbnails of the offered (region, why) pairs with their facts, each with the choices
    CEX, PG or neither (not a crystal), which the page's button saves as corrections.csv
    (gacrystal.monitoring.corrections)."""
    from PIL import Image
    from gacrystal.images import ImageError, read_rgb
    if not offered:
        return "<p>None yet.</p>"
    cards, frames = [], {}
    for number, (p, why) in enumerate(offered, start=1):
        if p.frame not in frames:  # one read a frame, however many of its regions are shown
            try:
                frames[p.frame] = read_rgb(frames_dir / p.frame)
            except ImageError:
                frames[p.frame] = None
        rgb = frames[p.frame]
        picture = "(frame no longer readable)"
        if rgb is not None:
            crop = Image.fromarray(rgb[p.y:p.y + p.h, p.x:p.x + p.w])
            picture = f'<img alt="crop" src="{data_uri(thumbnail(crop, 115))}">'
        key = escape(f"{p.frame}#{p.particle}")
        data = escape(",".join(str(v) for v in (p.x, p.y, p.w, p.h, p.label, p.p_pg)))
        choice = "".join(
            f'<label><input type="radio" name="{key}" value="{verdict}" data-box="{data}">'
            f"{verdict} <kbd>{letter}</kbd></label> " for verdict, letter in MARKS.items())
        cards.append(f'<div class="card" data-key="{key}">{picture}<br>{number}. '
                     f'<i>{escape(why)}</i><br>{escape(p.frame)} #{p.particle}'
                     f'<br>{p.label}, P(PG) {p.p_pg:.3f}, ood_score {_score(p.ood_score)}'
                     f'<br>{choice}</div>')
    return f'<div class="gallery">{"".join(cards)}</div>'


# The page's script, in the browser (no server, offline): one key press a verdict (C, P, N; the
# arrows move, Backspace clears), a counter, the marks kept in the browser's storage so that a
# live page's reload keeps them, and the button that writes corrections.csv from them.
REVIEW_SCRIPT = r"""<script>
const KEYS = {c: 'CEX', p: 'PG', n: 'neither'};
let cards = [], current = 0, STORE = '';
function stored() { try { return JSON.parse(localStorage.getItem(STORE) || '{}'); } catch (e) { return {}; } }
function remember(input, value) {  // the mark and its region's box: saved even once it is off the page
  const marks = stored();
  if (value) marks[input.name] = {verdict: value, box: input.dataset.box}; else delete marks[input.name];
  try { localStorage.setItem(STORE, JSON.stringify(marks)); } catch (e) {}
}
function showProgress() {
  const done = cards.filter(c => c.querySelector('input:checked')).length;
  const counter = document.getElementById('marked');
  if (counter) counter.textContent = done + ' of ' + cards.length + ' marked';
  cards.forEach((c, i) => c.classList.toggle('current', i === current));
}
function moveTo(i) {
  current = Math.max(0, Math.min(i, cards.length - 1));
  showProgress();
  if (cards[current]) cards[current].scrollIntoView({block: 'nearest'});
}
addEventListener('DOMContentLoaded', () => {
  STORE = 'gacrystal-marks:' + location.pathname + ':' + document.body.dataset.run;
  cards = [...document.querySelectorAll('.card[data-key]')];
  const marks = stored();
  for (const card of cards) {
    const value = (marks[card.dataset.key] || {}).verdict;
    const input = value && card.querySelector('input[value="' + value + '"]');
    if (input) input.checked = true;
    card.addEventListener('click', () => { current = cards.indexOf(card); showProgress(); });
  }
  const first = cards.findIndex(c => !c.querySelector('input:checked'));
  current = first < 0 ? 0 : first;
  showProgress();
});
addEventListener('change', e => { if (e.target.type === 'radio') { remember(e.target, e.target.value); showProgress(); } });
addEventListener('keydown', e => {
  if (!cards.length || e.ctrlKey || e.metaKey || e.altKey) return;
  const key = e.key.toLowerCase(), card = cards[current];
  if (KEYS[key]) {
    const input = card.querySelector('input[value="' + KEYS[key] + '"]');
    input.checked = true;
    remember(input, input.value);
    moveTo(current + 1);
  } else if (key === 'arrowright' || key === 'arrowdown') moveTo(current + 1);
  else if (key === 'arrowleft' || key === 'arrowup') moveTo(current - 1);
  else if (key === 'backspace') {
    card.querySelectorAll('input').forEach(i => { i.checked = false; });
    remember(card.querySelector('input'), '');
    showProgress();
  } else return;
  e.preventDefault();
});
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
  // marks of regions the page no longer offers (the offered set changes as the run goes on)
  for (const [name, mark] of Object.entries(stored())) {
    if (seen.has(name)) continue;
    const cut = name.lastIndexOf('#');
    rows.push([quote(name.slice(0, cut)), name.slice(cut + 1), mark.box, mark.verdict].join(','));
  }
  const blob = new Blob([head + "\n" + rows.join("\n") + "\n"], {type: 'text/csv'});
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = 'corrections.csv';
  link.click();
}
</script>"""


def run_key(frames: list[FrameRecord], frames_dir: Path, settings: dict) -> str:
    """What tells this run from another written to the same page (--overwrite, other frames):
    the browser keeps a page's marks under it, so that one run's marks never tick another's."""
    first = frames[0] if frames else None
    return "|".join(str(v) for v in (Path(frames_dir).resolve(), settings.get("weights", ""),
                                     first and first.frame, first and first.time))


def state_banner(frames: list[FrameRecord], alarm_text: str) -> str:
    """The run's state in one line: the alarm, or the probe blind, or watching."""
    last = frames[-1] if frames else None
    if last is not None and last.blind:
        return (f'<p class="blind"><b>PROBE BLIND since the last frames ({escape(last.quality)}: '
                f"{escape(last.quality_measure)})</b>. {escape(alarm_text)}</p>")
    return f"<p><b>{escape(alarm_text)}</b></p>"


def write_page(out: Path, frames: list[FrameRecord], settings: dict, alarm_text: str,
               frames_dir: Path, overlays: Path, offered: list[tuple], figures=None,
               refresh_s: int = 0, adapted: str = "") -> Path:
    """monitor.html: the state (alarm, probe blind) and what the alarm promises (figures: its
    AlarmFigures, once learnt), the latest frame's overlay (while watching), the trend, the PG
    detections and the most uncertain regions to mark right or wrong, thumbnails of the latest
    overlays (and the alarm's), a table of frames (as frames.csv writes them) and the settings.
    offered: the (region, why) pairs offered for review (ReviewPool.offered, in its order).
    Every picture embedded, so the page can be mailed, and their number bounded, so a long watch
    keeps it small; with refresh_s the page reloads itself that often (a watch's live page).
    adapted: what the run's decision was fitted on (--adapt), said under the alarm's figures."""
    from PIL import Image
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
.wide{{overflow-x:auto}}.wide td{{white-space:nowrap}}.card.current{{outline:3px solid #1565c0}}
.marking{{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ccc}}
kbd{{border:1px solid #999;border-radius:3px;padding:0 .25em;font-size:.85em}}</style>
{REVIEW_SCRIPT}
</head><body data-run="{escape(run_key(frames, frames_dir, settings))}">
<h1>PG monitoring: {escape(str(frames_dir))}</h1>
{state_banner(frames, alarm_text)}{live}
<p>{escape(figures.describe()) if figures else "The alarm is still learning its baseline."}</p>
{adapted_line}
<p>{len(frames)} frames. The counts come from a crop classifier applied to candidate regions
(bright blobs and a tile grid over the needle field); check the overlays below before trusting
them on your own frames.</p>
{latest}
{f'<img alt="trend" src="{data_uri(trend)}" style="max-width:100%">' if trend.exists() else ''}
<h2>Review: what is each region?</h2><p>{len(offered)} regions whose verdicts teach a model
the most about your probe: the confident PG calls, PG calls in the baseline, uncertain regions and
the run's looks, mixed so that the first ones cover every kind. Press <kbd>C</kbd> (CEX),
<kbd>P</kbd> (PG) or <kbd>N</kbd> (neither: a bubble, debris) for the outlined region; the arrows
move, <kbd>Backspace</kbd> clears. Then <button onclick="saveCorrections()">save
corrections.csv</button> (usually into your downloads folder) and fine-tune on your verdicts:
<code>python GAfinetune.py --run {escape(str(out))} --corrections SAVED.csv</code>; or fill in the
verdict column of <code>{escape(str(out / CORRECTIONS))}</code>, beside this page, and leave out
<code>--corrections</code>.</p>
<p class="marking"><b id="marked">0 of {len(offered)} marked</b>
<button onclick="saveCorrections()">save corrections.csv</button></p>
{particle_cards(offered, frames_dir)}
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
