"""The tf.data input pipeline: split folders -> batches of (RGB 0-255 images, labels).

Decoding goes through gacrystal.images.read_rgb, the same function inference uses, so training,
evaluation and labelling see identical pixels. Decoded images are cached in memory when they fit;
training batches are augmented as the original did (rotation, shift, zoom, flips, nearest fill).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras
from keras import layers

from gacrystal.dataset.split_folder import SPLIT_NAMES, check_split_folder, list_split  # noqa: F401
from gacrystal.images import ImageError, read_rgb, why_unreadable
from gacrystal.training.keras_state import seed_states

CACHE_SHARE_OF_MEMORY = 0.4  # cache decoded images only while they take less than this share


def drop_unreadable(paths, labels, image_size: int, resize: str = "bilinear",
                    decoded: dict | None = None):
    """Decodes every file once; returns the readable paths and labels, and (path, reason) pairs
    for the others. A file that cannot be decoded would otherwise stop training mid-epoch.

    decoded: a dict that receives {path: pixels} of the readable files, which make_dataset's
    first pass takes instead of decoding them again."""
    from concurrent.futures import ThreadPoolExecutor

    def reason(path):
        try:
            pixels = read_rgb(path, image_size, resize)
            if decoded is not None:
                decoded[os.fspath(path)] = pixels
            return ""
        except (ImageError, OSError) as error:
            return why_unreadable(error)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(reason, paths))
    keep = [not r for r in reasons]
    skipped = [(p, r) for p, r in zip(paths, reasons) if r]
    return [p for p, k in zip(paths, keep) if k], np.asarray(labels)[keep], skipped


def augmentation(seed: int, rotation_range: float = 30) -> keras.Sequential:
    """The original's ImageDataGenerator settings as Keras preprocessing layers, seeded.

    rotation_range degrees either way (the original's: 30), width/height_shift_range=0.2,
    zoom_range=0.3, horizontal and vertical flips, fill_mode="nearest".
    """
    return keras.Sequential([
        layers.RandomRotation(rotation_range / 360, fill_mode="nearest", seed=seed),
        layers.RandomTranslation(0.2, 0.2, fill_mode="nearest", seed=seed + 1),
        layers.RandomZoom(0.3, 0.3, fill_mode="nearest", seed=seed + 2),
        layers.RandomFlip("horizontal_and_vertical", seed=seed + 3),
    ], name="augmentation")


def fits_in_memory(n_images: int, image_size: int) -> bool:
    """True when the decoded images take less than CACHE_SHARE_OF_MEMORY of physical memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on every platform
        total = 8 * 2**30
    return n_images * image_size * image_size * 3 < CACHE_SHARE_OF_MEMORY * total


def decode(image_size: int, resize: str, decoded: dict | None = None):
    """A tf.data map function: path -> uint8 image of shape (size, size, 3), via read_rgb, or
    taken (once) from `decoded` where drop_unreadable already decoded the file."""
    def read(path):
        path = os.fsdecode(path)
        pixels = decoded.pop(path, None) if decoded else None
        return read_rgb(path, image_size, resize) if pixels is None else pixels

    def load(path, label):
        image = tf.numpy_function(read, [path], tf.uint8, stateful=False)
        image.set_shape((image_size, image_size, 3))
        return image, label
    return load


def make_dataset(paths, labels, image_size, batch_size, shuffle=False, augment=None, seed=42,
                 resize="bilinear", first_epoch=0, shard=(0, 1, 1),
                 decoded: dict | None = None) -> tf.data.Dataset:
    """Batches of (float32 RGB 0-255 images, float32 labels).

    Args:
        shuffle: the training split: a new order every epoch, drawn from (seed, epoch number), so
            a run resumed at first_epoch sees the orders an uninterrupted run would. The dataset
            is then endless; fit() needs steps_per_epoch (`steps_per_epoch(...)`).
        augment: a Keras model of random layers (`augmentation(seed)`) applied to each batch, or
            None. Validation and test data are neither shuffled nor augmented.
        shard: (first, local, pieces) on several workers: every batch (the global batch, the one
            a single process trains on) is cut into `pieces` (rows i, i + pieces, ...: piece i),
            and this pipeline yields pieces first .. first + local - 1 of it, one after the other
            (one per local replica). Each piece is augmented with random numbers of its own.
            A batch smaller than `pieces` (the last of an epoch, at most pieces - 1 images) is
            left out: a replica cannot compute on no image.
        decoded: {path: pixels} that drop_unreadable decoded; each is taken once, by the first
            pass (later passes read the cache, or the file where the images do not fit in it).
    """
    autotune = tf.data.AUTOTUNE
    # Paths as the file system's bytes: a name that is not valid UTF-8 cannot be a tf.string
    # made from Python text, but its bytes can.
    ds = tf.data.Dataset.from_tensor_slices(([os.fsencode(p) for p in paths],
                                             np.asarray(labels, np.float32)))
    ds = ds.map(decode(image_size, resize, decoded), num_parallel_calls=autotune)
    if fits_in_memory(len(paths), image_size):
        ds = ds.cache()
    if shuffle:
        ordered, n = ds, len(paths)
        ds = tf.data.Dataset.range(first_epoch, 2**62).flat_map(
            lambda epoch: ordered.shuffle(n, seed=seed + 7919 * epoch).batch(batch_size)
            .enumerate().map(lambda step, batch: ((epoch, step), batch)))
    else:
        ds = ds.batch(batch_size).map(lambda *batch: ((0, 0), batch))
    first, local, pieces = shard
    if pieces > 1:
        def big_enough(at, batch):  # else it sits the epoch out (steps_per_epoch agrees)
            return tf.shape(batch[0])[0] >= pieces

        def my_pieces(at, batch):  # the piece number joins the step: augment_at's position
            def piece_of(piece):
                return ((at[0], tf.cast(at[1], tf.int64) * pieces + piece),
                        tuple(part[piece::pieces] for part in batch))
            return tf.data.Dataset.range(first, first + local).map(piece_of)
        ds = ds.filter(big_enough).flat_map(my_pieces)
    ds = ds.map(lambda at, batch: (at, (tf.cast(batch[0], tf.float32), batch[1])),
                num_parallel_calls=autotune)
    if augment is not None:
        # Sequential on purpose: the random streams are set, then drawn from, batch by batch.
        # One call per batch keeps it far cheaper than a training step.
        ds = ds.map(lambda at, batch: (at, (augment_at(augment, *at, batch[0]), batch[1])))
    options = tf.data.Options()
    # Several replicas of one worker (MirroredStrategy) split the batches: no files to shard by.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.map(lambda at, batch: batch).prefetch(autotune).with_options(options)


AUGMENT_DRAWS = 16  # more than the random numbers the augmentation layers draw per batch


def augment_at(augment: keras.Model, epoch, step, images):
    """Augments one batch with random numbers that depend only on (the layers' seeds, epoch,
    step): not on how many batches were augmented before, or prefetched ahead. So a resumed run
    augments its batches as an uninterrupted run would."""
    position = (tf.cast(epoch, tf.int64) * 1_000_003 + tf.cast(step, tf.int64)) * AUGMENT_DRAWS
    for state in seed_states([augment]):
        state.assign(tf.cast(tf.stack([tf.cast(state[0], tf.int64), position]), state.dtype))
    return augment(images, training=True)


def steps_per_epoch(n_images: int, batch_size: int, pieces: int = 1) -> int:
    """Batches per epoch; cut into `pieces` (several workers), one smaller than that is left out."""
    return n_images // batch_size + (n_images % batch_size >= pieces)
