"""The demo's data (GAmain.py --demo): synthetic crops, drawn once into images/synthetic/, and
their leak-free split, made once into the folder the demo trains from."""
from __future__ import annotations

from pathlib import Path

from gacrystal.errors import UserError
from gacrystal.files import exclusive_lock

DEMO_SOURCE = "images/synthetic"
DEMO_IMAGES_PER_CLASS = 400
# The real PG files hold about six copies of each crop; the demo's 400 would then be only about
# 70 distinct crops for five looks. Two copies on average keep the leak-free split meaningful and
# give the classifier three times as many distinct PG crops to learn from.
DEMO_PG_GROUP_SIZES = (1, 2, 3)


def make_demo_split(split_dir: str):
    """--demo: synthetic images and their split, unless they are already there."""
    from gacrystal.dataset.splitting import describe, split_dataset
    from gacrystal.images import find_class_folders
    from gacrystal.synthetic.crops import drawn_by_older_generator, generate_dataset
    if Path(split_dir, "manifest.csv").exists():
        print(f"demo: using the existing split in {split_dir}")
        if Path(DEMO_SOURCE).is_dir() and drawn_by_older_generator(DEMO_SOURCE):
            print(f"note: the images in {DEMO_SOURCE} were drawn by an older version of the "
                  f"synthetic generator; delete {DEMO_SOURCE} and {split_dir} to draw new ones")
        return
    if Path(split_dir).is_dir() and any(Path(split_dir).iterdir()):
        raise UserError(f"data={split_dir} holds files but no split (no manifest.csv); the demo "
                        "writes its split only into an empty or new folder")
    with exclusive_lock(split_dir, "another split"):
        if find_class_folders(DEMO_SOURCE) is None:
            print(f"demo: writing synthetic images to {DEMO_SOURCE}")
            generate_dataset(DEMO_SOURCE, DEMO_IMAGES_PER_CLASS, DEMO_IMAGES_PER_CLASS,
                             pg_group_sizes=DEMO_PG_GROUP_SIZES)
        print(describe(split_dataset(DEMO_SOURCE, split_dir)))
