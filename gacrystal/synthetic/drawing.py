"""Drawing primitives of the probe's scene, for synthetic crops (gacrystal.synthetic.crops) and
whole frames (gacrystal.synthetic.frames): rods, the CEX rod field, a thin (sparse) field,
starbursts of rods, and PG agglomerates in four looks.

Sizes are in pixels of the real images (a CEX crop is UNIT_SIDE px); drawing a smaller crop
scales them by `unit`, as a lower-resolution picture of the same scene would. Values are floats in
[0, 1] until gacrystal.synthetic.crops maps them to a class's grey levels. Every function draws from
the random generator it is given, so a seed gives the same picture.

Speed: a whole frame holds about 54 crops' worth of rods. Broad noise is drawn on a coarse grid
and interpolated, and the far, strongly blurred rods at half resolution: their blur would remove
the detail that full resolution adds (the picture is the same kind; the pixels differ).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

UNIT_SIDE = 151

# The looks of the slurry behind everything (whole frames and the backgrounds of PG crops).
FIELD_REGIMES = {
    "dense": 0.5,    # covered by broad, blurred, low-contrast rods; few sharp needles
    "mixed": 0.3,    # broad blurred rods with sharp thin needles in front
    "bundles": 0.2,  # parallel bundles of striated rods over a blurred field
}
# A rarer look of the field, drawn for CEX crops only (gacrystal.synthetic.crops.CEX_REGIMES):
# broad, bright, striated rods with grainy surfaces, which a model that has not seen them takes for
# the granules of an agglomerate.
BROAD = "broad"


def choose(rng, regimes: dict[str, float]) -> str:
    names = list(regimes)
    return names[rng.choice(len(names), p=list(regimes.values()))]


def smooth_noise(shape, rng, scale) -> np.ndarray:
    """Noise of unit spread with features about `scale` px wide: uneven light, haze, granules.
    Broad noise is drawn on a grid scale / 4 px apart and interpolated (a 320 px blur of a whole
    frame's noise took most of its drawing time)."""
    step = max(int(scale // 4), 1)
    if step == 1:
        noise = gaussian_filter(rng.normal(size=shape).astype(np.float32), scale)
    else:
        coarse = rng.normal(size=(shape[0] // step + 2, shape[1] // step + 2)).astype(np.float32)
        noise = zoom(gaussian_filter(coarse, scale / step), step, order=1)[:shape[0], :shape[1]]
    return noise / (noise.std() + 1e-6)


def smooth_profile(rng, length: int, scale: float) -> np.ndarray:
    """1-D noise of unit spread with features about `scale` samples wide (a direct convolution:
    a rod's profiles are short, and a frame has over a thousand rods)."""
    reach = int(4 * scale + 0.5)
    taps = np.exp(-0.5 * (np.arange(-reach, reach + 1, dtype=np.float32) / scale) ** 2)
    noise = rng.normal(size=max(length, 2) + 2 * reach).astype(np.float32)
    profile = np.convolve(noise, taps / taps.sum(), mode="valid")
    return profile / (profile.std() + 1e-6)


def screen(base, layer) -> np.ndarray:
    """Blends a bright layer over base the way light adds up, without exceeding 1."""
    return 1.0 - (1.0 - base) * (1.0 - np.clip(layer, 0.0, 1.0))


def spot(shape, centre, radius) -> np.ndarray:
    """A Gaussian spot of peak 1 and 1/e radius `radius` px at centre (x, y)."""
    ys, xs = np.ogrid[0:shape[0], 0:shape[1]]
    return np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / radius ** 2).astype(np.float32)


def draw_rod(canvas, rng, center, angle, length, width, brightness, striation=0.0, edge=0.0):
    """Adds one rod with soft sides: brightness that varies along it, lengthwise striations
    (brightness that varies across it) and, on broad rods, bright edges."""
    direction = np.array([np.cos(angle), np.sin(angle)], np.float32)
    reach = np.abs(direction) * length / 2 + np.abs(direction[::-1]) * width / 2 + 2
    # Only the rod's bounding box is drawn: most of the canvas is far from any one rod.
    x_lo, y_lo = np.maximum(np.floor(center - reach), 0).astype(int)
    x_hi, y_hi = np.minimum(np.ceil(center + reach) + 1, canvas.shape[::-1]).astype(int)
    if x_lo >= x_hi or y_lo >= y_hi:
        return
    ys = np.arange(y_lo, y_hi, dtype=np.float32)[:, None] - np.float32(center[1])
    xs = np.arange(x_lo, x_hi, dtype=np.float32)[None, :] - np.float32(center[0])
    u = xs * direction[0] + ys * direction[1]  # along the rod
    v = ys * direction[0] - xs * direction[1]  # across it
    body = (np.clip((width / 2 + 0.7 - np.abs(v)) / 1.4, 0, 1)
            * np.clip((length / 2 + 0.7 - np.abs(u)) / 1.4, 0, 1))
    half = int(width / 2) + 3
    stripes = smooth_profile(rng, 2 * half + 1, rng.uniform(0.5, 1.2))
    along = smooth_profile(rng, int(length) + 3, length / 6)
    shade = (1 + rng.uniform(-0.3, 0.3) * u / max(length, 1)
             + 0.12 * np.interp(u + length / 2 + 1, np.arange(len(along)), along))
    value = shade * (1 + striation * np.interp(v + half, np.arange(2 * half + 1), stripes))
    if edge:
        value = value + edge * np.exp(-((width / 2 - np.abs(v)) / 1.2) ** 2)
    box = canvas[y_lo:y_hi, x_lo:x_hi]
    np.maximum(box, body * brightness * np.clip(value, 0, 1.6), out=box)


def draw_rods(shape, rng, count, length, width, brightness, unit=1.0, striation=(0.0, 0.0),
              edge=(0.0, 0.0), flow=None, bundle_chance=0.0) -> np.ndarray:
    """A layer of `count` rods (ranges in real-image px); with `flow`, most lie near that angle,
    as rods carried past the probe do; some come as bundles of near-parallel rods."""
    layer = np.zeros(shape, np.float32)
    height, width_px = shape
    drawn = 0
    while drawn < count:
        center = rng.uniform([-0.1 * width_px, -0.1 * height], [1.1 * width_px, 1.1 * height])
        angle = rng.uniform(0, np.pi) if flow is None or rng.random() < 0.3 else \
            flow + rng.normal(0, 0.35)
        rods = int(rng.integers(3, 9)) if rng.random() < bundle_chance else 1
        normal = np.array([-np.sin(angle), np.cos(angle)])
        rod_length = rng.uniform(*length) * unit
        spacing = rng.uniform(*width) * unit
        for i in range(rods):
            offset = normal * (i - rods / 2) * spacing * rng.uniform(0.7, 1.1) if rods > 1 else 0.0
            draw_rod(layer, rng, center + offset, angle + rng.normal(0, 0.02) * (rods > 1),
                     rod_length * rng.uniform(0.7, 1.1), rng.uniform(*width) * unit,
                     rng.uniform(*brightness), rng.uniform(*striation), rng.uniform(*edge))
        drawn += rods
    return layer


def blurred_at_half_resolution(shape, draw, blur) -> np.ndarray:
    """draw(half_shape, unit_factor) drawn at half resolution, blurred by `blur` px (full-size
    px) and brought back to `shape`: for layers so blurred that full resolution adds nothing."""
    half = ((shape[0] + 1) // 2, (shape[1] + 1) // 2)
    layer = gaussian_filter(draw(half, 0.5), blur / 2)
    return zoom(layer, 2, order=1)[:shape[0], :shape[1]]


def rod_field(shape, rng, unit=1.0, regime: str | None = None) -> np.ndarray:
    """The CEX slurry at the real images' scale, values in [0, 1], any shape (a crop or a whole
    probe frame): overlapping rods at three focus depths on a dark, uneven background, in one of
    FIELD_REGIMES."""
    regime = regime or choose(rng, FIELD_REGIMES)
    crops = shape[0] * shape[1] / (UNIT_SIDE * unit) ** 2  # rod counts below are per CEX crop

    def count(low, high):
        return int(round(rng.uniform(low, high) * crops))

    far_count, mid_count, sharp_count = {"dense": ((10, 18), (6, 12), (0, 2)),
                                         "mixed": ((6, 12), (4, 8), (2, 6)),
                                         "bundles": ((6, 10), (2, 5), (0, 3)),
                                         BROAD: ((4, 8), (2, 5), (0, 3))}[regime]
    flow = rng.uniform(0, np.pi) if rng.random() < 0.6 else None
    canvas = 0.16 + 0.06 * smooth_noise(shape, rng, max(shape) / 4)
    far_rods = count(*far_count)
    far = blurred_at_half_resolution(
        shape, lambda half, f: draw_rods(half, rng, far_rods, (80, 320), (15, 45), (0.2, 0.5),
                                         unit * f, striation=(0.0, 0.3), flow=flow),
        rng.uniform(3.0, 6.0) * unit)
    canvas = screen(canvas, far)
    broad = regime == BROAD
    mid = draw_rods(shape, rng, count(*mid_count), (80, 300), (18, 40) if broad else (5, 24),
                    (0.45, 0.8) if broad else (0.3, 0.9), unit,
                    striation=(0.5, 0.9) if broad else (0.2, 0.7),
                    edge=(0.0, 0.4), flow=flow)
    if regime == "bundles":
        mid = np.maximum(mid, draw_rods(shape, rng, count(4, 10), (80, 260), (3, 10),
                                        (0.35, 0.75), unit, striation=(0.2, 0.6),
                                        edge=(0.0, 0.3), flow=flow, bundle_chance=1.0))
    # Rods are not smooth bars: their surfaces are grainy, which survives the blur as mottling.
    grain = rng.uniform(0.25, 0.45) if broad else rng.uniform(0.1, 0.5)
    mid = mid * (1 + grain * smooth_noise(shape, rng, (1.0 if broad else 1.5) * unit))
    canvas = screen(canvas, gaussian_filter(mid, rng.uniform(1.5, 3.5) * unit))
    sharp = draw_rods(shape, rng, count(*sharp_count), (40, 240), (1.5, 5), (0.35, 0.85), unit,
                      flow=flow, bundle_chance=0.2)
    canvas = screen(canvas, gaussian_filter(sharp, rng.uniform(0.5, 1.0) * unit))
    # Most of the slurry is dim and a few rods catch the light: real CEX crops have a long
    # bright tail in their histograms (median below the mean), which a power above 1 gives.
    return np.clip(canvas, 0, 1) ** rng.uniform(1.4, 2.4)


def sparse_field(shape, rng, unit=1.0) -> np.ndarray:
    """A thin slurry (the real `CEX (293).png`): an almost blank, evenly grey field with a few
    thin needles that show darker than it, some out of focus."""
    canvas = 0.6 + 0.03 * smooth_noise(shape, rng, max(shape) / 3)
    needles = draw_rods(shape, rng, int(rng.integers(2, 9)), (30, 200), (1.0, 4.0), (0.3, 0.9),
                        unit, flow=rng.uniform(0, np.pi) if rng.random() < 0.5 else None,
                        bundle_chance=0.15)
    needles = gaussian_filter(needles, rng.uniform(0.5, 2.5) * unit)
    return canvas * (1 - 0.6 * np.clip(needles, 0, 1))


def starburst(shape, rng, centre, unit=1.0) -> np.ndarray:
    """CEX rods radiating from one bright point, as crystals grown from one nucleus: a bright,
    dense cluster that a particle finder takes for an agglomerate. A layer to `screen` on.

    Args:
        centre: (x, y) of the nucleus in px of `shape`.
    """
    layer = np.zeros(shape, np.float32)
    for angle in rng.uniform(0, 2 * np.pi, int(rng.integers(12, 31))):
        length = rng.uniform(25, 110) * unit
        direction = np.array([np.cos(angle), np.sin(angle)])
        middle = np.asarray(centre) + direction * (rng.uniform(0, 10) * unit + length / 2)
        draw_rod(layer, rng, middle, angle, length, rng.uniform(3, 10) * unit,
                 rng.uniform(0.5, 1.0), rng.uniform(0.1, 0.6), rng.uniform(0.0, 0.4))
    layer = np.maximum(layer, rng.uniform(0.8, 1.0) * spot(shape, centre,
                                                           rng.uniform(5, 14) * unit))
    return gaussian_filter(layer, rng.uniform(1.0, 2.5) * unit)


# An agglomerate's looks (the surface inside its outline):
AGGLOMERATE_LOOKS = (
    "plate",     # nearly saturated, smoothly shaded, a band of dark pits and granules at its rim
    "mottled",   # dimmer, an irregular mosaic of bright granules and dark gaps
    "coarse",    # dim, coarse granules, barely brighter than the rods around it, no bright core
    "granular",  # a cluster of bright granules with dark gaps between them (the real `PG.png`)
)


def agglomerate(shape, rng, center, radius, unit=1.0, look: str | None = None):
    """One PG agglomerate centred at center (x, y) with mean radius `radius` px, in one of
    AGGLOMERATE_LOOKS (plate or mottled when not given).

    Returns:
        (layer, alpha), both float32 of `shape` in [0, 1]: composite as
        canvas * (1 - alpha) + layer * alpha.
    """
    look = look or ("plate" if rng.random() < 0.6 else "mottled")
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    stretch, tilt = rng.uniform(0.7, 1.0), rng.uniform(0, np.pi)
    u = (xs - center[0]) * np.cos(tilt) + (ys - center[1]) * np.sin(tilt)
    v = ((ys - center[1]) * np.cos(tilt) - (xs - center[0]) * np.sin(tilt)) / stretch
    distance, theta = np.hypot(u, v), np.arctan2(v, u)
    lumpiness = 0.10 if look == "plate" else 0.22
    outline = np.ones_like(theta)
    for k in range(2, 6):  # the overall shape: round to lumpy
        outline += rng.normal(0, lumpiness / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    granules = smooth_noise(shape, rng, (2.5 if look == "granular" else 1.6) * unit)
    ragged = (smooth_noise(shape, rng, radius / 6) * rng.uniform(0.04, 0.10) * radius
              + granules * rng.uniform(1.5, 3.5) * unit)
    inside = radius * outline - distance + ragged  # > 0 inside, in px
    alpha = np.clip(inside / (1.5 * unit) + 0.5, 0.0, 1.0)
    if look == "plate":
        rim_width = radius * rng.uniform(0.15, 0.35)
        rim = np.clip(1.0 - inside / rim_width, 0.0, 1.0)  # 1 at the edge, 0 deep inside
        pits = np.clip((smooth_noise(shape, rng, 1.8 * unit) - 1.4 + 2.2 * rim) / 0.4, 0, 1)
        layer = (rng.uniform(0.93, 1.0) + 0.04 * smooth_noise(shape, rng, radius / 2)
                 - pits * np.clip(2 * rim, 0, 1) * rng.uniform(0.55, 0.8)
                 - 0.03 * np.abs(granules))
    elif look == "mottled":
        mosaic = np.clip(granules, -1.0, 2.5) * rng.uniform(0.1, 0.16)  # bright grains, dark gaps
        layer = rng.uniform(0.5, 0.7) + 0.1 * smooth_noise(shape, rng, radius / 3) + mosaic
    elif look == "coarse":
        coarse = smooth_noise(shape, rng, rng.uniform(2.5, 4.5) * unit)  # grains 5-9 px wide
        layer = (rng.uniform(0.3, 0.45) + 0.05 * smooth_noise(shape, rng, radius / 3)
                 + np.clip(coarse, -1.5, 2.5) * rng.uniform(0.06, 0.1))
    else:  # granular: grains that catch the light, dark gaps between them
        bright = np.clip((granules - rng.uniform(-0.2, 0.5)) / 0.9, 0, 1)
        layer = rng.uniform(0.2, 0.35) + rng.uniform(0.5, 0.7) * bright
    if look in ("coarse", "granular"):  # loose, a little out of focus: soft grains, soft outline
        layer = gaussian_filter(layer, rng.uniform(0.8, 1.6) * unit)
        alpha = gaussian_filter(alpha, rng.uniform(1.5, 3.5) * unit)
    return np.clip(layer, 0, 1).astype(np.float32), alpha.astype(np.float32)


def composite(canvas, layer, alpha) -> np.ndarray:
    return canvas * (1 - alpha) + layer * alpha


def needles_in_front(shape, rng, unit=1.0, count=(3, 7)) -> np.ndarray:
    """A layer of a few bright, sharp needles crossing in front of everything (to `screen` on)."""
    front = draw_rods(shape, rng, int(rng.integers(*count)), (60, 220), (2, 6), (0.6, 0.9), unit,
                      striation=(0.0, 0.3))
    return gaussian_filter(front, rng.uniform(0.8, 1.5) * unit)


def rods_in_front(shape, rng, count: int, unit=1.0) -> np.ndarray:
    """A layer of rods in front of the focal plane, letting what lies behind show through."""
    front = draw_rods(shape, rng, count, (80, 260), (3, 16), (0.3, 0.7), unit,
                      striation=(0.1, 0.5), edge=(0.0, 0.3))
    return gaussian_filter(front, rng.uniform(0.8, 2.0) * unit) * rng.uniform(0.5, 0.9)
