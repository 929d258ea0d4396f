"""The dataset (GAsplit.py): from class folders to a leak-free train/val/test split, with no
TensorFlow anywhere in it.

- copies: finding copies of one crop (rotated, mirrored, re-encoded) so that they stay together;
- splitting: the 70/25/5 split by whole groups of copies, and its leak report;
- split_folder: reading a split folder back (the one check that it is there, its paths, labels);
- demo: the demo's data, drawn and split once.
"""
