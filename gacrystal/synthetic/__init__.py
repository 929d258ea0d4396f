"""Synthetic data (GAsynth.py): crops and whole probe frames drawn like the real ones, with no
TensorFlow anywhere in it.

- crops: the Kaggle-layout crops of CEX and PG (generate_dataset);
- drawing: the drawing primitives of the probe's scene (rods, fields, PG agglomerates);
- frames: whole probe frames of a spiking experiment, with their ground truth;
- mosaic: whole frames made of real crops, to check the monitor on real texture;
- realism: how close the synthetic crops come to real ones.
"""
