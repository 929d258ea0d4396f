"""The training pipeline's data (gacrystal/training/data.py): each file is decoded once before the
first step, by the readability check, whose pixels the pipeline's first pass takes."""
from collections import Counter

import numpy as np

from gacrystal.training import data, fit


def test_each_file_is_decoded_once_through_the_first_epoch(split_dir, monkeypatch):
    decodes = Counter()
    read_rgb = data.read_rgb

    def counting_read_rgb(path, *args, **kwargs):
        decodes[str(path)] += 1
        return read_rgb(path, *args, **kwargs)
    monkeypatch.setattr(data, "read_rgb", counting_read_rgb)
    splits = fit.load_splits(split_dir, image_size=32, resize="bilinear", batch_size=8,
                             augment=False, seed=42)
    images = {}
    for name, split in splits.items():
        steps = -(-len(split["paths"]) // 8)
        batches = list(split["dataset"].take(steps))
        images[name] = np.concatenate([x for x, _ in batches])
    files = [str(p) for split in splits.values() for p in split["paths"]]
    assert sorted(decodes) == sorted(files) and set(decodes.values()) == {1}
    # The pixels are the file's: the validation images in order, as read_rgb gives them.
    expected = np.stack([read_rgb(p, 32, "bilinear") for p in splits["val"]["paths"]])
    np.testing.assert_array_equal(images["val"], expected)
