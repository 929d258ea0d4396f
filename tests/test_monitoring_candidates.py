"""Where the monitor looks in a whole frame (gacrystal/monitoring/candidates.py): blobs, not
needles, not cut or blurred ones; tiles over the needle field, not over flat areas."""
import numpy as np
import pytest

from gacrystal.monitoring import candidates as cand
from probe import add_disc, textured_frame


def test_blobs_are_found_needles_are_not_and_edges_and_blur_are_handled():
    rng = np.random.default_rng(1)
    frame = textured_frame(seed=1)
    frame = add_disc(frame, 150, 180, 45, rng=rng)               # an agglomerate, in focus
    frame = add_disc(frame, 470, 60, 45, rng=rng)                # one cut by the right edge
    frame = add_disc(frame, 340, 200, 45, value=200, blur=12)     # out of focus
    blobs = cand.find_blobs(frame, min_area=2000)
    inside = [b for b in blobs if b.covers(150, 180)]
    assert len(inside) == 1 and inside[0].in_focus
    assert inside[0].w >= cand.PG_CROP_MIN and inside[0].diameter_px == pytest.approx(90, rel=0.3)
    assert not any(b.covers(470, 60) for b in blobs)             # touches the edge: left out
    blurred = [b for b in blobs if b.covers(340, 200)]
    assert blurred and not blurred[0].in_focus
    assert len(blobs) == 2                                       # the needles made none


def test_tiles_cover_the_frame_and_skip_flat_areas():
    frame = textured_frame(height=300, width=500)
    frame[:150, :150] = 80.0  # a flat corner: nothing to see
    tiles = cand.tile_grid(frame, 100)
    assert len(tiles) == 3 * 5 - 1
    assert all(t.w == t.h == 100 for t in tiles)
    assert not any(t.covers(10, 10) for t in tiles)
