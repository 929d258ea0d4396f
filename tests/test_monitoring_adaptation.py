"""Adapting the decision to a run's baseline frames (gacrystal/monitoring/adaptation.py): the fit
on made-up features, the adapter holding frames until it has fitted, and GAmonitor.py --adapt on
the session's tiny trained model (fitted, recorded, gone on with, refused on a run counted
without it, cleared by --overwrite)."""
import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gacrystal.errors import UserError
from gacrystal.monitoring.adaptation import (FEATURES, Adaptation, BaselineAdapter,
                                             LabelledCrops, fit, relabel)
from gacrystal.monitoring.outputs import ADAPTATION_JSON, ADAPTATION_NPZ

RNG = np.random.default_rng(0)
# Training crops: CEX around (-2, 0, ...), PG around (+2, 0, ...). The probe's texture lies on
# the PG side of the first feature (what the network calls PG) but apart in the second.
CEX_CROPS = RNG.normal(size=(60, 8)) + [-2, 0, 0, 0, 0, 0, 0, 0]
PG_CROPS = RNG.normal(size=(60, 8)) + [2, 0, 0, 0, 0, 0, 0, 0]
TEXTURE = RNG.normal(size=(80, 8)) * 0.5 + [2, 6, 0, 0, 0, 0, 0, 0]


def crops(features, classes) -> LabelledCrops:
    return LabelledCrops(features, np.asarray(classes), np.asarray(classes, float), "made up")


TRAIN = crops(np.concatenate([CEX_CROPS, PG_CROPS]), [0] * 60 + [1] * 60)


def record(features, label="PG"):
    return {"label": label, "p_pg": 0.9, "confidence": 0.9, "ood_score": 0.2,
            FEATURES: features}


def test_the_baseline_texture_becomes_cex_and_the_training_pg_stays_pg():
    adaptation = fit(TRAIN, TEXTURE[:40], TRAIN, ["a.png", "b.png"], network_pg=40,
                     threshold=0.5)
    assert np.mean(adaptation.p_pg(TEXTURE[40:]) >= 0.5) == 0  # held-out texture: CEX
    assert np.mean(adaptation.p_pg(PG_CROPS) >= 0.5) > 0.95
    assert np.mean(adaptation.p_pg(CEX_CROPS) < 0.5) > 0.95
    facts = adaptation.facts
    assert facts["frames"] == ["a.png", "b.png"] and facts["regions"] == 40
    assert facts["network_pg"] == 40 and facts["adapted_pg"] == 0
    assert facts["validation_pg_recall"]["adapted"] > 0.95
    assert facts["assumption"] == "the baseline frames hold no PG"


def test_relabel_changes_cex_and_pg_only_and_keeps_the_features():
    adaptation = fit(TRAIN, TEXTURE, None, ["a.png"], 0, 0.5)
    rows = relabel([record(TEXTURE[0]), record(PG_CROPS[0], "CEX"),
                    {"label": "UNKNOWN", "p_pg": 0.7, "confidence": None, FEATURES: PG_CROPS[1]},
                    {"label": "UNKNOWN", "p_pg": None, "note": "out of focus"}], adaptation, 0.5)
    assert [r["label"] for r in rows] == ["CEX", "PG", "UNKNOWN", "UNKNOWN"]
    assert rows[0]["p_pg"] < 0.5 and rows[0]["confidence"] == pytest.approx(1 - rows[0]["p_pg"])
    assert rows[1]["p_pg"] >= 0.5 and rows[1]["confidence"] == pytest.approx(rows[1]["p_pg"])
    assert rows[2]["p_pg"] == 0.7  # unlike the training images: left as it was
    # kept for the review's variety
    assert np.array_equal(rows[0][FEATURES], TEXTURE[0])
    assert np.array_equal(rows[2][FEATURES], PG_CROPS[1])


def frame(name, good=True):
    return SimpleNamespace(path=Path(name), quality=SimpleNamespace(good=good))


def test_the_adapter_holds_frames_until_enough_good_ones_then_hands_all_on_in_order(tmp_path):
    calls = []

    def fit_crops():
        calls.append(1)
        return TRAIN, None
    adapter = BaselineAdapter(fit_crops, frames_needed=2, threshold=0.5, out=tmp_path)
    assert adapter.take([frame("1.png"), frame("2.png", good=False)],
                        [[record(t) for t in TEXTURE[:20]], []]) == []
    assert adapter.waiting == "1 of 2 good frames to adapt to" and adapter.unrecorded() == 2
    assert not calls and not (tmp_path / ADAPTATION_NPZ).exists()
    ready = adapter.take([frame("3.png"), frame("4.png")],
                         [[record(t) for t in TEXTURE[20:40]], [record(PG_CROPS[0])]])
    assert [f.path.name for f, _ in ready] == ["1.png", "2.png", "3.png", "4.png"]
    assert [[r["label"] for r in rs] for _, rs in ready] == [["CEX"] * 20, [], ["CEX"] * 20,
                                                             ["PG"]]
    assert calls == [1] and adapter.waiting == "" and adapter.unrecorded() == 0
    facts = json.loads((tmp_path / ADAPTATION_JSON).read_text())
    assert facts["frames"] == ["1.png", "3.png"] and facts["regions"] == 40  # good frames only
    again = Adaptation.load(tmp_path)  # as a run that goes on reads it
    assert np.allclose(again.p_pg(TEXTURE), adapter.adaptation.p_pg(TEXTURE))
    ready = adapter.take([frame("5.png")], [[record(t) for t in TEXTURE[40:]]])
    assert {r["label"] for r in ready[0][1]} == {"CEX"} and calls == [1]  # fitted once


def test_a_baseline_with_no_regions_to_adapt_to_is_refused(tmp_path):
    adapter = BaselineAdapter(lambda: (TRAIN, None), 1, 0.5, tmp_path)
    with pytest.raises(UserError, match="no regions to adapt to"):
        adapter.take([frame("1.png")], [[{"label": "UNKNOWN", "p_pg": None}]])


def test_gamonitor_adapts_records_the_fit_and_goes_on_with_it(runs, split_dir, tmp_path, capsys):
    import GAmonitor
    from probe import spiking_frames
    frames = tmp_path / "frames"
    spiking_frames(frames, count=3, spike=3)
    weights = str(runs["a"] / "model.onnx")
    common = ["--frames", str(frames), "--weights", weights, "--min_area", "2000",
              "--baseline_frames", "2"]
    plain, adapted = tmp_path / "plain", tmp_path / "adapted"
    GAmonitor.main(common + ["--out", str(plain)])
    GAmonitor.main(common + ["--out", str(adapted), "--adapt", "--adapt_data", str(split_dir)])
    text = capsys.readouterr().out
    assert "taken to be free of PG" in text and "adapted to this run, fitted on" in text
    facts = json.loads((adapted / ADAPTATION_JSON).read_text())
    assert facts["frames"] == ["frame (1).png", "frame (2).png"]
    assert "Adapted to this run, fitted on frame (1).png to frame (2).png" in \
        (adapted / "monitor.html").read_text()
    in_split = {name: len(list((split_dir / "train" / name).iterdir())) for name in ("CEX", "PG")}
    assert facts["training_crops"] == {"folder": str(split_dir / "train"), **in_split}
    rows = {name: list(csv.DictReader(open(out / "particles.csv"))) for name, out in
            (("plain", plain), ("adapted", adapted))}
    assert [r["frame"] for r in rows["plain"]] == [r["frame"] for r in rows["adapted"]]
    assert len({r["frame"] for r in rows["adapted"]}) == 3  # the held frames are recorded too
    unknown = [[r["label"] == "UNKNOWN" for r in rows[k]] for k in rows]
    assert unknown[0] == unknown[1]  # the out-of-distribution check is the network's
    judged = [(a, p) for a, p in zip(rows["adapted"], rows["plain"]) if a["label"] in ("CEX", "PG")]
    assert judged and any(a["p_pg"] != p["p_pg"] for a, p in judged)
    assert all((float(a["p_pg"]) >= 0.5) == (a["label"] == "PG") for a, _ in judged)
    # A run taken up goes on with the fit it has; --adapt on a run counted without it is refused.
    spiking_frames(frames, count=4, spike=3)
    fitted = (adapted / ADAPTATION_NPZ).read_bytes()
    GAmonitor.main(common + ["--out", str(adapted)])
    assert "going on adapted" in capsys.readouterr().out
    assert (adapted / ADAPTATION_NPZ).read_bytes() == fitted
    assert len(list(csv.DictReader(open(adapted / "frames.csv")))) == 4
    with pytest.raises(UserError, match="counted without --adapt"):
        GAmonitor.main(common + ["--out", str(plain), "--adapt", "--adapt_data", str(split_dir)])
    GAmonitor.main(common + ["--out", str(adapted), "--overwrite"])  # starts again, not adapted
    assert not (adapted / ADAPTATION_NPZ).exists() and not (adapted / ADAPTATION_JSON).exists()
