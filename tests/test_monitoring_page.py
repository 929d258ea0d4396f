"""The pictures of a run (gacrystal/monitoring/overlay.py, trend.py, page.py): overlays, the
trend, and monitor.html with its detections to review."""
from PIL import Image

from gacrystal.images import list_images
from gacrystal.monitoring import CusumRule, FrameClock, Monitor
from gacrystal.monitoring.overlay import OVERLAYS
from gacrystal.monitoring.page import write_page
from gacrystal.monitoring.trend import plot_trend
from probe import BrightnessClassifier, spiking_frames


def test_pictures_and_page_show_the_run(tmp_path):
    frames = tmp_path / "frames"
    spiking_frames(frames, count=3, spike=2)
    run = Monitor(BrightnessClassifier(), tmp_path / "out", FrameClock("auto"),
                  CusumRule(1, threshold=0.5), tile_size=64, min_area=2000, overlay_every=1)
    run.process(list_images(frames))
    plot_trend(run.frames, run.out / "trend.png")
    page = write_page(run.out, run.frames, {"min_area": 2000}, "No alarm.", frames,
                      run.out / OVERLAYS, run.picks).read_text()
    assert Image.open(run.out / "trend.png").size[0] > 500
    assert page.count('alt="overlay"') == 3 and "data:image/png;base64," in page
    assert "frame (3).png" in page and "min_area" in page
    highest, uncertain = run.picks.rows()
    assert page.count('alt="crop"') == len(highest) + len(uncertain) > 0
    assert all(r.label == "PG" for r in highest)
    assert [r.p_pg for r in highest] == sorted((r.p_pg for r in highest), reverse=True)
