"""Reviewing and correcting labels: review.html (offline, every image shown), corrections.csv,
and copying corrected files into a Kaggle-style folder without moving or overwriting anything."""
import base64
import csv
import hashlib
import io
import re
import shutil
import subprocess

from PIL import Image

import GAinfer


def snapshot(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_review_page_and_corrections_round_trip(runs, split_dir, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((split_dir / "test").rglob("*.png")):
        shutil.copyfile(path, images / path.name)
    (images / "broken.png").write_bytes(b"not a png")
    review = tmp_path / "review"
    assert GAinfer.main(["--weights", str(runs["a"] / "model.keras"), "--images", str(images),
                         "--review", str(review)]) == 1  # one unreadable file
    html = (review / "review.html").read_text()
    sources = re.findall(r'src="([^"]+)"', html)
    n_readable = len(list(images.glob("*.png"))) - 1
    assert len(sources) == 2 * n_readable  # each image and its Grad-CAM
    for src in sources:
        assert src.startswith("data:image/png;base64,")  # embedded: opens offline
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).load()
    assert 'id="error"' in html and "broken.png" in html and "http" not in html
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                    "google-chrome"))), None)
    if chromium:  # a real browser, offline, where one is installed: it decodes every image
        probe = tmp_path / "probe.html"  # the page plus a script that counts the decoded images
        probe.write_text(html.replace("</body>", "<script>addEventListener('load', () => "
                                      "document.body.dataset.shown = [...document.images].filter("
                                      "i => i.complete && i.naturalWidth > 0).length)</script>"
                                      "</body>"))
        dom = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox",
                              "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                             capture_output=True, text=True, timeout=120, check=True).stdout
        assert f'data-shown="{len(sources)}"' in dom
    with open(review / "corrections.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n_readable + 1 and list(rows[0]) == ["file", "predicted", "p_pg", "verdict"]
    broken = next(r for r in rows if r["file"].endswith("broken.png"))
    assert broken["predicted"] == "ERROR"
    in_class = [r for r in rows if r["predicted"] in ("CEX", "PG")]
    confidence = {r["file"]: abs(float(r["p_pg"]) - 0.5) for r in in_class}
    for class_name in ("CEX", "PG"):  # least certain first, within each class
        order = [confidence[r["file"]] for r in in_class if r["predicted"] == class_name]
        assert order == sorted(order)
    assert max(sum(r["predicted"] == name for r in in_class) for name in ("CEX", "PG")) >= 2

    assert {r["verdict"] for r in rows} == {""}  # nothing looked at yet
    # The reviewer flips one label and leaves one image out.
    flipped, left_out = in_class[0], in_class[1]
    flipped["verdict"] = "wrong"
    left_out["verdict"] = "neither"
    with open(review / "corrections.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = snapshot(images)
    dest = tmp_path / "corrected"
    assert GAinfer.main(["--apply_corrections", str(review / "corrections.csv"),
                         "--corrected_dest", str(dest)]) == 0
    assert snapshot(images) == before  # copies, never moves
    copied = {p.name: p.parent.name for p in dest.rglob("*.png")}
    assert len(copied) == n_readable - 1 and left_out["file"].rsplit("/", 1)[-1] not in copied
    other = {"CEX": "pg", "PG": "cex"}[flipped["predicted"]]
    assert copied[flipped["file"].rsplit("/", 1)[-1]] == other
    assert GAinfer.main(["--apply_corrections", str(review / "corrections.csv"),
                         "--corrected_dest", str(dest)]) == 0
    assert "0 copied" in capsys.readouterr().out.splitlines()[-2]  # nothing twice
    # The Kaggle layout GAsplit.py reads.
    from gacrystal.images import find_class_folders
    assert set(find_class_folders(dest)) == {"CEX", "PG"}


def test_a_bad_verdict_names_the_line(tmp_path):
    import pytest
    from gacrystal import UserError
    path = tmp_path / "corrections.csv"
    path.write_text("file,predicted,p_pg,verdict\na.png,CEX,0.1,pg\nb.png,PG,0.9,maybe\n")
    with pytest.raises(UserError, match="line 3: verdict must be right, wrong, neither, CEX, PG"):
        GAinfer.main(["--apply_corrections", str(path), "--corrected_dest", str(tmp_path / "d")])


def test_a_label_changed_since_the_last_copy_leaves_the_other_class(tmp_path, capsys):
    from gacrystal.labelling.review import copy_corrected
    from gacrystal.corrections import sha256
    source = tmp_path / "images" / "a.png"
    source.parent.mkdir()
    Image.new("L", (8, 8), 100).save(source)
    dest = tmp_path / "corrected"
    (dest / "pg").mkdir(parents=True)
    Image.new("L", (8, 8), 200).save(dest / "pg" / "a.png")  # another image of the same name
    assert copy_corrected([(source, "CEX")], dest)["copied"] == 1
    counts = copy_corrected([(source, "PG")], dest)  # the reviewer changed their mind
    assert counts["relabelled"] == 1 and counts["copied"] == 1
    assert not list((dest / "cex").iterdir())
    assert sorted(p.name for p in (dest / "pg").iterdir()) == sorted(
        ["a.png", f"a_{sha256(source.read_bytes())[:8]}.png"])  # the other image of that name stays
    assert copy_corrected([(source, "PG")], dest) == {
        "copied": 0, "already there": 1, "relabelled": 0, "missing": 0}
