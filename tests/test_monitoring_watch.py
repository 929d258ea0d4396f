"""Watching a folder a probe writes into (gacrystal/monitoring/watch.py): each good frame once,
bad ones reported, and a restarted watcher that adds nothing twice."""
import csv
import threading
import time

from gacrystal.images import list_images
from gacrystal.monitoring import CusumRule, FrameClock, Monitor, watch
from probe import BrightnessClassifier, spiking_frames


def test_watch_takes_each_good_frame_once_reports_bad_ones_and_resumes(tmp_path):
    source, folder, out = tmp_path / "source", tmp_path / "probe", tmp_path / "out"
    spiking_frames(source, count=5, spike=3)
    folder.mkdir()
    good = [p.name for p in list_images(source)]

    def probe():  # writes frames the way a camera might: some in two parts, one corrupt
        for i, name in enumerate(good):
            data = (source / name).read_bytes()
            target = folder / name
            if i % 2:
                target.write_bytes(data[:len(data) // 3])
                time.sleep(0.25)
                with open(target, "ab") as f:
                    f.write(data[len(data) // 3:])
            else:
                target.write_bytes(data)
            time.sleep(0.1)
        (folder / "frame (99).png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    writer = threading.Thread(target=probe)
    writer.start()
    run = Monitor(BrightnessClassifier(), out, FrameClock("auto"), CusumRule(2),
                  tile_size=64, min_area=2000, overlay_every=0)
    run.resume()
    # retries x poll_s = 1 s: longer than the writer's 0.25 s pause inside a frame
    watch(run, folder, poll_s=0.1, retries=10, frames_per_batch=2, stop_after_idle=1.5)
    writer.join()
    names = [r["frame"] for r in csv.DictReader(open(out / "frames.csv"))]
    assert sorted(names) == sorted(good) and len(names) == len(set(names))
    assert list(run.unreadable) == ["frame (99).png"]
    assert [r["frame"] for r in csv.DictReader(open(out / "unreadable.csv"))] == ["frame (99).png"]
    # A restarted watcher finds nothing new and adds nothing; a new frame is taken.
    (folder / "frame (6).png").write_bytes((source / "frame (1).png").read_bytes())
    again = Monitor(BrightnessClassifier(), out, FrameClock("auto"), CusumRule(2),
                    tile_size=64, min_area=2000, overlay_every=0)
    again.resume()
    watch(again, folder, poll_s=0.1, retries=10, frames_per_batch=2, stop_after_idle=0.5)
    names = [r["frame"] for r in csv.DictReader(open(out / "frames.csv"))]
    assert sorted(names) == sorted(good + ["frame (6).png"])
    assert [r["frame"] for r in csv.DictReader(open(out / "unreadable.csv"))] == ["frame (99).png"]
