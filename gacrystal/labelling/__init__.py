"""Labelling images with a trained model (GAinfer.py).

- folder: labelling a folder in one pass (the table, the summary, Grad-CAM, the embedding map);
- review: the review page, its corrections.csv, and copying the corrected files into cex/ pg/;
- shards: labelling on a Dask cluster (--cluster): the shards, one process's rows in order,
  going on where a run stopped.
"""
