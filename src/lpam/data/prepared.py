"""Prepared datasets: the compact file `lpam prepare` writes and `train` / `evaluate` read with
``--data PREPARED.npz`` (docs/method.md section 6).

One .npz with, per split (train, val, test): ``<split>_images`` (S, C, H, W) float16 magnitudes in [0, 1],
``<split>_subjects`` (S,) subject ids and ``<split>_slices`` (S,) slice positions in the source volume;
plus ``contrasts``, ``source_format`` and ``lpam_prepared`` (the format version).
Version 2 adds, for datasets prepared with measured k-space (``--measured-kspace``), ``<split>_complex``
(S, C, H, W) complex64 images x with F x the measured k-space and ``<split>_images`` = |x| (not clipped:
a few of the brightest pixels may exceed 1, so that F x stays the scaled measurement, docs/method.md section 7);
and, when the dataset came with a sampling mask of the prepared size, ``mask`` (H, W) (the file then
serves as ``--mask-file``). Version 3 adds, for measured multi-coil k-space kept per coil
(``--keep-coils``), ``<split>_coil_images`` (S, C, Nc, H, W) complex64 coil images x_c with F x_c the
measured coil k-space, and ``<split>_maps`` (S, C, Nc, H, W) complex64 coil maps estimated per slice and
contrast; then ``<split>_complex`` = sum_c conj(S_c) x_c. Versions 1 and 2 remain readable.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from lpam.io import atomic_path

VERSION = 3
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"validation": "val"}


class PreparedSplit(NamedTuple):
    """One split of a prepared dataset; ``complex_images`` only for measured k-space, ``coil_images`` and
    ``maps`` only for measured k-space kept per coil (else None)."""

    images: np.ndarray
    contrasts: list[str]
    subjects: list[str]
    slices: list[int]
    complex_images: np.ndarray | None
    coil_images: np.ndarray | None = None
    maps: np.ndarray | None = None


def is_prepared(path: str | Path) -> bool:
    """True for an .npz written by :func:`save_prepared`."""
    path = Path(path)
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path) as archive:
            return "lpam_prepared" in archive.files
    except Exception:  # not a readable archive: the caller reports it as a data file
        return False


def save_prepared(path: str | Path, splits: dict[str, dict[str, np.ndarray]], contrasts: list[str],
                  source_format: str, mask: np.ndarray | None = None) -> None:
    """Write the splits ({split: {"images", "subjects", "slices"[, "complex"[, "coil_images", "maps"]]}}) and
    the mask atomically."""
    arrays = {"lpam_prepared": np.array(VERSION), "contrasts": np.array(contrasts), "source_format": np.array(source_format)}
    if mask is not None:
        arrays["mask"] = np.asarray(mask, dtype=bool)
    for split in SPLITS:
        part = splits[split]
        arrays[f"{split}_images"] = np.asarray(part["images"], dtype=np.float16)
        arrays[f"{split}_subjects"] = np.asarray(part["subjects"], dtype=str)
        arrays[f"{split}_slices"] = np.asarray(part["slices"], dtype=np.int32)
        for key in ("complex", "coil_images", "maps"):
            if key in part:
                arrays[f"{split}_{key}"] = np.asarray(part[key], dtype=np.complex64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_prepared(path: str | Path, split: str) -> PreparedSplit:
    """Images (S, C, H, W) float32, contrasts, subject ids, slice positions and (measured k-space only)
    complex64 images, coil images and coil maps of one split."""
    path = Path(path)
    name = SPLIT_ALIASES.get(split, split)
    if name not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    try:
        with np.load(path) as archive:
            if "lpam_prepared" not in archive.files:
                raise ValueError(f"{path} is not a dataset written by `lpam prepare`")
            version = int(archive["lpam_prepared"])
            if version > VERSION:
                raise ValueError(f"{path}: prepared-format version {version} is newer than this lpam reads "
                                 f"({VERSION}); update lpam")
            images = archive[f"{name}_images"].astype(np.float32)
            subjects = [str(s) for s in archive[f"{name}_subjects"]]
            slices = [int(s) for s in archive[f"{name}_slices"]]
            contrasts = [str(c) for c in archive["contrasts"]]
            complex_images, coil_images, maps = (archive[f"{name}_{key}"] if f"{name}_{key}" in archive.files else None
                                                 for key in ("complex", "coil_images", "maps"))
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"{path}: cannot be read as a prepared dataset (corrupt or truncated?): {error}") from error
    if images.shape[0] == 0:
        raise ValueError(f"{path}: the {name} split is empty")
    return PreparedSplit(images, contrasts, subjects, slices, complex_images, coil_images, maps)
