"""The pictures of a run (gacrystal/monitoring/overlay.py, trend.py, page.py): overlays, the
trend, and monitor.html with its detections to review: live while watching, and in headless
Chromium (where installed; skipped with the reason where not) drawn, and saving its marks."""
import csv
import io

import numpy as np
import pytest
from PIL import Image

from gacrystal.images import list_images
from gacrystal.monitoring import CusumRule, FrameClock, Monitor
from gacrystal.monitoring.corrections import CORRECTION_COLUMNS, read_corrections
from gacrystal.monitoring.overlay import OVERLAYS
from gacrystal.monitoring.page import write_page
from gacrystal.monitoring.trend import plot_trend
from probe import BrightnessClassifier, disc_frames, spiking_frames


def test_pictures_and_page_show_the_run(tmp_path):
    frames = tmp_path / "frames"
    spiking_frames(frames, count=3, spike=2)
    run = Monitor(BrightnessClassifier(), tmp_path / "out", FrameClock("auto"),
                  CusumRule(1, threshold=0.5), tile_size=64, min_area=2000, overlay_every=1)
    run.process(list_images(frames))
    plot_trend(run.frames, run.out / "trend.png")
    offered = run.picks.offered()
    page = write_page(run.out, run.frames, {"min_area": 2000}, "No alarm.", frames,
                      run.out / OVERLAYS, offered).read_text()
    assert Image.open(run.out / "trend.png").size[0] > 500
    assert page.count('alt="overlay"') == 3 and "data:image/png;base64," in page
    assert "frame (3).png" in page and "min_area" in page
    assert page.count('alt="crop"') == len(offered) > 0
    assert f"0 of {len(offered)} marked" in page
    confident = [r for r, why in offered if why == "confident PG call"]
    assert len(confident) >= 2 and all(r.label == "PG" for r in confident)  # an order to check
    assert [r.p_pg for r in confident] == sorted((r.p_pg for r in confident), reverse=True)


def chromium() -> str:
    import shutil
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)
    if found is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the page is not "
                    "checked in a browser here")
    return found


def watched_run(tmp_path, latest=True):
    frames = tmp_path / "frames"
    disc_frames(frames, count=5, spike=3)
    run = Monitor(BrightnessClassifier(), tmp_path / "out", FrameClock("auto"), CusumRule(2),
                  tile_size=64, min_area=2000, overlay_every=0, latest_overlay=latest)
    run.process(list_images(frames))
    plot_trend(run.frames, run.out / "trend.png")
    return run, frames


def test_a_live_page_reloads_itself_and_shows_the_latest_frame_a_finished_one_does_not(tmp_path):
    run, frames = watched_run(tmp_path)
    live = write_page(run.out, run.frames, {}, "No alarm.", frames, run.out / OVERLAYS,
                      run.picks.offered(), refresh_s=10).read_text()
    assert '<meta http-equiv="refresh" content="10">' in live
    assert 'alt="latest"' in live and "Latest frame: frame (5).png" in live
    done = write_page(run.out, run.frames, {}, "No alarm.", frames, run.out / OVERLAYS,
                      run.picks.offered()).read_text()
    assert "http-equiv" not in done and 'alt="latest"' not in done


def test_the_page_in_a_browser_shows_the_run_and_saves_the_marks_as_corrections(tmp_path):
    import subprocess
    browser = chromium()
    run, frames = watched_run(tmp_path)
    page = write_page(run.out, run.frames, {}, "No alarm.", frames, run.out / OVERLAYS,
                      run.picks.offered(), refresh_s=10)
    shot = tmp_path / "page.png"
    subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox",
                    "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), float)
    assert pixels.shape == (1600, 1200) and pixels.std() > 20  # drawn, not a blank page
    # One key press a region: P for the first, N for the second; then the button: the file it
    # saves, and the counter
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", """<script>
HTMLAnchorElement.prototype.click = function () {
  fetch(this.href).then(r => r.text()).then(t => { document.body.dataset.csv = t; });
};
addEventListener('load', () => {
  // a mark made earlier on a region the page no longer offers
  localStorage.setItem(STORE, JSON.stringify({'frame (9).png#4': {verdict: 'CEX', box: '1,2,3,4,PG,0.9'}}));
  for (const key of ['p', 'n']) dispatchEvent(new KeyboardEvent('keydown', {key}));
  document.body.dataset.counter = document.getElementById('marked').textContent;
  saveCorrections();
});
</script></body>""").replace('<meta http-equiv="refresh" content="10">', ""))
    dom = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox",
                          "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    import html
    text = html.unescape(dom.split('data-csv="', 1)[1].split('"', 1)[0])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == CORRECTION_COLUMNS
    assert [r["verdict"] for r in rows[:2]] == ["PG", "neither"]
    assert rows[-1] == {**dict(zip(CORRECTION_COLUMNS, ["frame (9).png", "4", "1", "2", "3", "4",
                                                        "PG", "0.9", "CEX"]))}  # still saved
    assert all(r["verdict"] == "" for r in rows[2:-1])
    assert f'data-counter="2 of {len(rows) - 1} marked"' in dom
    saved = tmp_path / "corrections.csv"
    saved.write_text(text)
    assert read_corrections(saved)[(rows[0]["frame"], int(rows[0]["particle"]))] == "PG"
