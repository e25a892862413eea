"""Prepared datasets: the compact file `lpam prepare` writes and `train` / `evaluate` read with
``--data PREPARED.npz`` (SPEC.md section 6).

One .npz with, per split (train, val, test): ``<split>_images`` (S, C, H, W) float16 magnitudes in [0, 1],
``<split>_subjects`` (S,) subject ids and ``<split>_slices`` (S,) slice positions in the source volume;
plus ``contrasts``, ``source_format`` and ``lpam_prepared`` (the format version).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lpam.io import atomic_path

VERSION = 1
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"validation": "val"}


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
                  source_format: str) -> None:
    """Write the splits ({split: {"images", "subjects", "slices"}}) atomically."""
    arrays = {"lpam_prepared": np.array(VERSION), "contrasts": np.array(contrasts), "source_format": np.array(source_format)}
    for split in SPLITS:
        part = splits[split]
        arrays[f"{split}_images"] = np.asarray(part["images"], dtype=np.float16)
        arrays[f"{split}_subjects"] = np.asarray(part["subjects"], dtype=str)
        arrays[f"{split}_slices"] = np.asarray(part["slices"], dtype=np.int32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_prepared(path: str | Path, split: str) -> tuple[np.ndarray, list[str], list[str], list[int]]:
    """(images (S, C, H, W) float32, contrasts, subject ids, slice positions) of one split."""
    path = Path(path)
    name = SPLIT_ALIASES.get(split, split)
    if name not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    try:
        with np.load(path) as archive:
            if "lpam_prepared" not in archive.files:
                raise ValueError(f"{path} is not a dataset written by `lpam prepare`")
            images = archive[f"{name}_images"].astype(np.float32)
            subjects = [str(s) for s in archive[f"{name}_subjects"]]
            slices = [int(s) for s in archive[f"{name}_slices"]]
            contrasts = [str(c) for c in archive["contrasts"]]
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"{path}: cannot be read as a prepared dataset (corrupt or truncated?): {error}") from error
    if images.shape[0] == 0:
        raise ValueError(f"{path}: the {name} split is empty")
    return images, contrasts, subjects, slices
