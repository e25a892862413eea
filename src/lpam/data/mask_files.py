"""Sampling masks as files: ``lpam mask`` writes them (.npy and a picture), ``--mask-file`` reads them.

The masks themselves (:mod:`lpam.physics.masks`) know nothing of files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lpam.data.files import read_array
from lpam.io import check_output_file, save_npy, staged_outputs
from lpam.physics.masks import binary_mask_error


def save_mask(mask: np.ndarray, path: str | Path, title: str | None = None) -> None:
    """Write ``mask`` to ``path`` (.npy) and a picture of it beside it (same stem, .png), both or neither."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and leaves pyplot's state alone

    path = Path(path)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    if path.suffix != ".npy":
        raise ValueError(f"a mask is saved as .npy, got {path}")
    check_output_file(path)
    check_output_file(path.with_suffix(".png"))
    figure = Figure(figsize=(4, 4 * mask.shape[0] / mask.shape[1]))
    axis = figure.subplots()
    axis.imshow(mask, cmap="gray", interpolation="nearest")
    axis.set_title(title or f"sampling rate {mask.mean():.3f}", fontsize=9)
    axis.axis("off")
    with staged_outputs(path.parent) as staging:  # both files or neither
        save_npy(mask.astype(bool), staging / path.name)
        figure.savefig(staging / path.with_suffix(".png").name, dpi=100, bbox_inches="tight", format="png")


def load_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask from .npy, .npz or .mat (the array named 'mask', else the only / largest one): bool, or 0
    and 1 (1 = sampled). Raises ValueError naming the file when it is missing, unreadable, not 2-D, of
    another shape than ``shape``, holds NaN / infinity or values other than 0 and 1, or samples nothing."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"mask file not found: {path}")
    array = read_array(path, preferred=("mask",))
    if array.ndim != 2:
        raise ValueError(f"{path}: a mask must be 2-D, got shape {array.shape}")
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(f"{path}: mask shape {array.shape} does not match the data shape {tuple(shape)}")
    problem = binary_mask_error(array)
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    mask = np.round(array.astype(np.float64)) == 1 if array.dtype != bool else array
    if not mask.any():
        raise ValueError(f"{path}: the mask samples no k-space point (all zeros)")
    return mask
