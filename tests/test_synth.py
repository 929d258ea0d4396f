"""The synthetic dataset: layout, determinism, image format, and the PG rotation groups."""
import hashlib

import numpy as np
import pytest
from PIL import Image

from gacrystal.images import KAGGLE_SUBPATH, list_images
from GAsynth import main
from gacrystal.images import dihedral
from gacrystal.synthetic.crops import generate_dataset
from conftest import SMALL


def file_hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


def test_layout_and_names_follow_kaggle(synthetic_root):
    cex = list_images(synthetic_root / KAGGLE_SUBPATH / "cex")
    pg = list_images(synthetic_root / KAGGLE_SUBPATH / "pg")
    assert [p.name for p in cex] == [f"CEX ({n}).png" for n in range(1, 41)]
    assert [p.name for p in pg] == [f"PG ({n}).png" for n in range(1, 41)]


def test_same_seed_same_files_other_seed_other_files(tmp_path, synthetic_root):
    generate_dataset(tmp_path / "again", 40, 40, seed=3, progress=False, **SMALL)
    generate_dataset(tmp_path / "other", 40, 40, seed=4, progress=False, **SMALL)
    reference = file_hashes(synthetic_root)
    assert file_hashes(tmp_path / "again") == reference
    other = file_hashes(tmp_path / "other")
    assert other.keys() == reference.keys()
    assert all(other[name] != reference[name] for name in reference)


def test_images_are_grey_stored_as_rgb_with_real_sizes(synthetic_root):
    for path in synthetic_root.rglob("*.png"):
        image = Image.open(path)
        assert image.mode == "RGB"
        pixels = np.asarray(image)
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
        if path.name.startswith("CEX"):
            assert image.size == (48, 48)
        else:
            assert all(40 <= side <= 64 for side in image.size)


def test_default_sizes_and_grey_levels_match_the_real_ranges(tmp_path):
    generate_dataset(tmp_path, 6, 12, seed=1, progress=False)
    for path in tmp_path.rglob("*.png"):
        grey = np.asarray(Image.open(path))[..., 0].astype(float)
        if path.name.startswith("CEX"):
            assert grey.shape == (151, 151)
            assert 60 <= grey.mean() <= 135 and 25 <= grey.std() <= 70
        else:
            assert all(130 <= side <= 230 for side in grey.shape)
            assert 90 <= grey.mean() <= 150 and 30 <= grey.std() <= 82


def is_dihedral_copy(a, b):
    return any(dihedral(a, k).shape == b.shape and np.array_equal(dihedral(a, k), b)
               for k in range(8))


def test_pg_files_come_in_groups_of_rotated_or_mirrored_copies(synthetic_root):
    pg = [np.asarray(Image.open(p))[..., 0]
          for p in list_images(synthetic_root / KAGGLE_SUBPATH / "pg")]
    groups = [[pg[0]]]
    for pixels in pg[1:]:
        if is_dihedral_copy(groups[-1][0], pixels):
            groups[-1].append(pixels)
        else:
            groups.append([pixels])
    assert all(4 <= len(group) <= 8 for group in groups[:-1])
    for group in groups:  # within a group: distinct transforms, not repeats of one file
        assert len({g.tobytes() + bytes(g.shape) for g in group}) == len(group)
    firsts = [group[0] for group in groups]
    for i, a in enumerate(firsts):  # distinct crops across groups
        assert not any(is_dihedral_copy(a, b) for b in firsts[i + 1:])


def test_cli_refuses_to_write_over_images(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--cex_count", "2", "--pg_count", "2"]) is None
    from gacrystal.errors import UserError
    import pytest
    with pytest.raises(UserError, match="already holds images"):
        main(["--out", str(tmp_path), "--cex_count", "2", "--pg_count", "2"])
    main(["--out", str(tmp_path), "--cex_count", "1", "--pg_count", "1", "--overwrite"])
    assert len(list(tmp_path.rglob("*.png"))) == 2  # no stale files from the first run


def test_each_look_is_drawn_with_its_stated_probability():
    from gacrystal.synthetic.crops import CEX_REGIMES, PG_REGIMES, choose
    rng = np.random.default_rng(0)
    for regimes in (CEX_REGIMES, PG_REGIMES):
        assert abs(sum(regimes.values()) - 1) < 1e-9
        drawn = [choose(rng, regimes) for _ in range(4000)]
        for name, probability in regimes.items():
            assert abs(drawn.count(name) / len(drawn) - probability) < 0.03


def test_the_rod_field_and_an_agglomerate_can_be_drawn_at_any_size():
    from gacrystal.synthetic.crops import agglomerate, rod_field
    rng = np.random.default_rng(1)
    field = rod_field((200, 330), rng)
    assert field.shape == (200, 330) and 0 <= field.min() and field.max() <= 1
    assert field.std() > 0.02  # rods, not a flat grey
    layer, alpha = agglomerate((120, 140), rng, center=(70, 60), radius=40)
    assert layer.shape == alpha.shape == (120, 140)
    assert alpha[60, 70] == 1 and alpha[0, 0] == 0  # the particle sits where it was asked to


def write_crops(folder, crops: dict, prefix_by_class=True):
    folder.mkdir(parents=True, exist_ok=True)
    for name, images in crops.items():
        for i, grey in enumerate(images, 1):
            Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB").save(
                folder / f"{name} ({i}).png")


def test_realism_figures_are_near_zero_for_the_generator_itself_and_grow_for_blur(tmp_path):
    from scipy.ndimage import gaussian_filter

    from gacrystal.synthetic import realism
    reference = realism.synthetic_sample(8, seed=5)
    write_crops(tmp_path / "same", reference)
    write_crops(tmp_path / "blurred", {k: [gaussian_filter(g, 4) for g in v]
                                       for k, v in reference.items()})
    sample = realism.synthetic_sample(8, seed=6)
    same = realism.compare(realism.real_crops(tmp_path / "same"), sample)
    blurred = realism.compare(realism.real_crops(tmp_path / "blurred"), sample)
    for s, b in zip(same, blurred):
        assert s["spectrum_distance"] < 0.3 < b["spectrum_distance"]
        assert s["histogram_distance"] < 15
        assert b["edge_density_real"] < s["edge_density_real"]


def test_compare_prints_the_figures_and_writes_the_sheet(tmp_path, capsys):
    from gacrystal.synthetic import realism
    write_crops(tmp_path / "real", realism.synthetic_sample(2, seed=9))
    sheet = tmp_path / "sheet.png"
    main(["--compare", str(tmp_path / "real"), "--compare_count", "3",
          "--compare_sheet", str(sheet), "--weights", str(tmp_path / "none.keras")])
    out = capsys.readouterr().out
    assert "histogram" in out and "spectrum" in out and "no model at" in out
    assert Image.open(sheet).size[1] == 4 * (realism.SHEET_HEIGHT + 8)  # real/synthetic x 2


def test_compare_names_what_it_needs(tmp_path):
    import pytest

    from gacrystal.errors import UserError
    write_crops(tmp_path / "only_cex", {"CEX": [np.zeros((20, 20))]})
    with pytest.raises(UserError, match="both classes"):
        main(["--compare", str(tmp_path / "only_cex")])
    with pytest.raises(UserError, match="is not a folder"):
        main(["--compare", str(tmp_path / "missing")])


def test_the_images_say_which_generator_drew_them(tmp_path):
    from gacrystal.synthetic.crops import STAMP_FILE, drawn_by_older_generator
    generate_dataset(tmp_path, 1, 1, progress=False, **SMALL)
    assert not drawn_by_older_generator(tmp_path)
    (tmp_path / STAMP_FILE).unlink()  # as images drawn before the stamp existed
    assert drawn_by_older_generator(tmp_path)


def drawn_in(regime: str, draw, regimes, monkeypatch, seed=0):
    """A crop drawn in one look (the generator's choice of look is fixed to `regime`)."""
    from gacrystal.synthetic import crops as synthetic
    original = synthetic.choose
    monkeypatch.setattr(synthetic, "choose", lambda rng, options: regime if options is regimes
                        else original(rng, options))
    return draw(np.random.default_rng(seed))


def test_every_look_is_drawn_in_its_grey_range(monkeypatch):
    from gacrystal.synthetic import crops as s
    for regime in s.CEX_REGIMES:
        crop = drawn_in(regime, lambda rng: s.draw_cex(rng, 151), s.CEX_REGIMES, monkeypatch)
        grey = s.SPARSE_GREY if regime == "sparse" else s.CEX_GREY
        assert crop.shape == (151, 151) and crop.dtype == np.uint8
        assert grey["mean"][0] - 2 <= crop.mean() <= grey["mean"][1] + 2, regime
        assert crop.std() <= grey["std"][1] + 2, regime
    for regime in s.PG_REGIMES:
        crop = drawn_in(regime, lambda rng: s.draw_pg(rng, (130, 230)), s.PG_REGIMES, monkeypatch)
        assert 130 <= min(crop.shape) and max(crop.shape) <= 230
        assert s.PG_GREY["mean"][0] - 2 <= crop.mean() <= s.PG_GREY["mean"][1] + 2, regime


def test_the_thin_slurry_is_flat_and_its_needles_dark(monkeypatch):
    from gacrystal.synthetic import crops as s
    crop = drawn_in("sparse", lambda rng: s.draw_cex(rng, 151), s.CEX_REGIMES, monkeypatch,
                    seed=3).astype(float)
    median = np.median(crop)
    assert crop.std() < 15  # the real CEX (293).png: 7.9
    assert (crop < median - 3 * crop.std()).mean() > 10 * (crop > median + 3 * crop.std()).mean()


def test_a_starburst_is_bright_at_its_nucleus_and_its_rods_radiate_from_it():
    from gacrystal.synthetic.drawing import starburst
    ys, xs = np.mgrid[0:151, 0:151]
    distance = np.hypot(xs - 60, ys - 90)
    for seed in range(3):
        layer = starburst((151, 151), np.random.default_rng(seed), centre=(60, 90))
        assert layer[distance < 15].mean() > 2 * layer[(distance > 45) & (distance < 70)].mean()
        assert distance[layer > 0.3].max() > 40  # rods reach out from it
