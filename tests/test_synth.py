"""The synthetic dataset: layout, determinism, image format, and the PG rotation groups."""
import hashlib

import numpy as np
from PIL import Image

from gacrystal.images import KAGGLE_SUBPATH, list_images
from GAsynth import main
from gacrystal.images import dihedral
from gacrystal.synthetic import generate_dataset
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
