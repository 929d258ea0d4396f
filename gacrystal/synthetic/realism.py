"""How close the synthetic crops come to real ones (GAsynth.py --compare DIR).

    real = real_crops("../shared/reference/real")
    rows = compare(real, synthetic_sample(60, seed=42))
    write_sheet(real, synthetic, "realism.png")

Per class, each figure compares the real files with a synthetic sample:

- histogram distance: the earth mover's (Wasserstein-1) distance between the two sets' grey-level
  distributions, in grey levels (0 = the same histogram; 10 = pixels shifted by 10 levels on
  average);
- spectrum distance: the RMS difference, in decades, of the mean radially averaged power spectra
  (each normalised to unit total power, so that it compares texture and blur, not contrast) of a
  centred 128 x 128 window (real resolution, no resizing: resizing would move the spectrum);
- edge density: the share of pixels on Canny edges (scikit-image, sigma 2), real and synthetic.

A few real files are a small sample: read the figures as "closer or further than before", not as
a verdict on the generator.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gacrystal.errors import UserError
from gacrystal.images import CLASS_NAMES, class_subfolders, grey_levels, list_images, read_rgb

SPECTRUM_SIDE = 128
SHEET_HEIGHT = 151  # every image on the sheet is scaled to the real CEX crop's height
EDGE_SIGMA = 2.0


def class_of(path: Path) -> str | None:
    """CEX or PG from a Kaggle-style file name ("PG (565).png") or a cex/pg parent folder."""
    for name in (path.stem.split(" ")[0].split("(")[0], path.parent.name):
        if name.upper() in CLASS_NAMES:
            return name.upper()
    return None


def real_crops(folder: str | Path, setting: str = "compare") -> dict[str, list[Path]]:
    """The real crops in folder (Kaggle names, or cex/ and pg/ subfolders), by class; `setting`
    names the setting that gave the folder in the errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{setting}={folder} is not a folder; give a folder of real crops named "
                        "like the Kaggle files (CEX (1).png, PG (2).png) or with cex/ and pg/")
    paths = [p for sub in (class_subfolders(folder) or {}).values() for p in list_images(sub)]
    paths += list_images(folder)
    by_class = {name: sorted({p for p in paths if class_of(p) == name}) for name in CLASS_NAMES}
    if not all(by_class.values()):
        raise UserError(f"{setting}={folder} needs real crops of both classes, named like the Kaggle "
                        "files (CEX (1).png, PG (2).png) or in cex/ and pg/ subfolders. Found: "
                        + ", ".join(f"{len(v)} {k}" for k, v in by_class.items()))
    return by_class


def grey_of(path: Path) -> np.ndarray:
    return grey_levels(read_rgb(path))


def synthetic_sample(count: int, seed: int, cex_size=151, pg_size_range=(130, 230),
                     draw_cex=None, draw_pg=None) -> dict[str, list[np.ndarray]]:
    """`count` synthetic crops per class, grey, drawn in memory (draw_cex/draw_pg: another
    generator's functions, e.g. an older version's, for a before/after comparison)."""
    from gacrystal.synthetic import crops as synthetic
    draw_cex = draw_cex or (lambda rng: synthetic.draw_cex(rng, cex_size))
    draw_pg = draw_pg or (lambda rng: synthetic.draw_pg(rng, pg_size_range,
                                                        cex_size / synthetic.UNIT_SIDE))
    return {"CEX": [draw_cex(synthetic.class_rng(seed, 0, n)).astype(np.float32)
                    for n in range(count)],
            "PG": [draw_pg(synthetic.class_rng(seed, 1, n)).astype(np.float32)
                   for n in range(count)]}


def centre_window(grey: np.ndarray, side: int = SPECTRUM_SIDE) -> np.ndarray:
    """The centred side x side window (the whole image, zero-padded, when it is smaller)."""
    out = np.zeros((side, side), np.float32)
    height, width = grey.shape
    top, left = max((height - side) // 2, 0), max((width - side) // 2, 0)
    window = grey[top:top + side, left:left + side]
    out[:window.shape[0], :window.shape[1]] = window
    return out


def log_power_spectrum(grey: np.ndarray) -> np.ndarray:
    """The radially averaged power spectrum of the centre window, normalised to unit total
    power, in log10; one value per integer frequency 1 .. SPECTRUM_SIDE / 2."""
    window = centre_window(grey)
    window = (window - window.mean()) * np.outer(np.hanning(SPECTRUM_SIDE), np.hanning(SPECTRUM_SIDE))
    power = np.abs(np.fft.fftshift(np.fft.fft2(window))) ** 2
    ys, xs = np.indices(power.shape) - SPECTRUM_SIDE // 2
    radius = np.rint(np.hypot(xs, ys)).astype(int).ravel()
    sums = np.bincount(radius, power.ravel())
    counts = np.bincount(radius)
    radial = sums[1:SPECTRUM_SIDE // 2 + 1] / counts[1:SPECTRUM_SIDE // 2 + 1]
    return np.log10(radial / radial.sum() + 1e-20)


def edge_density(grey: np.ndarray) -> float:
    from skimage.feature import canny
    return float(canny(grey / 255.0, sigma=EDGE_SIGMA).mean())


def class_figures(real: list[np.ndarray], synthetic: list[np.ndarray]) -> dict[str, float]:
    from scipy.stats import wasserstein_distance
    real_pixels = np.concatenate([g.ravel() for g in real])
    synthetic_pixels = np.concatenate([g.ravel() for g in synthetic])
    spectra = [np.mean([log_power_spectrum(g) for g in images], axis=0)
               for images in (real, synthetic)]
    return {"histogram_distance": float(wasserstein_distance(real_pixels, synthetic_pixels)),
            "spectrum_distance": float(np.sqrt(np.mean((spectra[0] - spectra[1]) ** 2))),
            "edge_density_real": float(np.mean([edge_density(g) for g in real])),
            "edge_density_synthetic": float(np.mean([edge_density(g) for g in synthetic]))}


def compare(real: dict[str, list[Path]], synthetic: dict[str, list[np.ndarray]]) -> list[dict]:
    """One row of figures per class (see the module docstring)."""
    rows = []
    for name in CLASS_NAMES:
        figures = class_figures([grey_of(p) for p in real[name]], synthetic[name])
        rows.append({"class": name, "real": len(real[name]), "synthetic": len(synthetic[name]),
                     **figures})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'class':6} {'real':>5} {'synth':>6} {'histogram':>10} {'spectrum':>9} "
             f"{'edges real':>11} {'edges synth':>12}"]
    for r in rows:
        lines.append(f"{r['class']:6} {r['real']:5d} {r['synthetic']:6d} "
                     f"{r['histogram_distance']:10.1f} {r['spectrum_distance']:9.3f} "
                     f"{r['edge_density_real']:11.3f} {r['edge_density_synthetic']:12.3f}")
    return "\n".join(lines)


def write_sheet(real: dict[str, list[Path]], synthetic: dict[str, list[np.ndarray]], path,
                per_row: int = 6):
    """A PNG with, per class, a row of real crops above a row of synthetic ones, at one scale."""
    from PIL import Image, ImageDraw

    from gacrystal.files import atomic_path

    def row(images: list[np.ndarray], title: str) -> Image.Image:
        tiles = [Image.fromarray(np.clip(g, 0, 255).astype(np.uint8)) for g in images[:per_row]]
        tiles = [t.resize((max(1, round(t.width * SHEET_HEIGHT / t.height)), SHEET_HEIGHT))
                 for t in tiles]
        strip = Image.new("L", (120 + sum(t.width + 6 for t in tiles), SHEET_HEIGHT), 255)
        ImageDraw.Draw(strip).text((6, SHEET_HEIGHT // 2 - 6), title, fill=0)
        x = 120
        for tile in tiles:
            strip.paste(tile, (x, 0))
            x += tile.width + 6
        return strip

    strips = []
    for name in CLASS_NAMES:
        strips.append(row([grey_of(p) for p in real[name]], f"real {name}"))
        strips.append(row(synthetic[name], f"synthetic {name}"))
    sheet = Image.new("L", (max(s.width for s in strips), len(strips) * (SHEET_HEIGHT + 8)), 255)
    for i, strip in enumerate(strips):
        sheet.paste(strip, (0, i * (SHEET_HEIGHT + 8)))
    with atomic_path(path) as temporary:
        sheet.save(temporary, format="PNG")


def label_real(weights: str | Path, real: dict[str, list[Path]]) -> list[dict]:
    """Each real crop's label, P(PG) and ood_score under a (synthetic-trained) model, with its
    true class."""
    from gacrystal.classifier import load_classifier
    classifier = load_classifier(weights)
    paths = [p for name in CLASS_NAMES for p in real[name]]
    records = classifier.label(paths)
    return [{**r, "file": Path(r["file"]).name, "true": class_of(p)}
            for r, p in zip(records, paths)]
