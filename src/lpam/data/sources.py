"""Where images come from: the embedded ICBM data, a dataset written by `lpam prepare`, or an image file."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from lpam.data.embedded import load_split
from lpam.data.files import read_array
from lpam.data.prepared import is_prepared, load_prepared
from lpam.options import check_unique

RANGE_TOLERANCE = 0.01  # image files may exceed [0, 1] by this much (rounding of stored values)


@dataclass
class EvaluationData:
    """Images (S, C, H, W), slice identifiers and contrast names. ``images`` are real magnitudes in [0, 1],
    or complex64 when the dataset holds measured k-space (prepared with ``--measured-kspace``): then F x is
    the measured k-space and |x| the ground truth (docs/method.md section 7). Measured multi-coil k-space kept
    per coil (``--keep-coils``) adds ``coil_images`` x_c and coil ``maps`` S_c, both (S, C, Nc, H, W)
    complex64, with F x_c the measured coil k-space and x = sum_c conj(S_c) x_c."""

    images: torch.Tensor
    slice_ids: list[int]
    contrasts: list[str]
    source: str
    coil_images: torch.Tensor | None = None
    maps: torch.Tensor | None = None

    @property
    def measured(self) -> bool:
        """True when ``images`` are complex images of measured k-space."""
        return self.images.is_complex()


def _check_image_range(array: np.ndarray, data: str) -> None:
    """Refuse image files not scaled to [0, 1] (0-4095, int16, negative values): the models would return
    little more than the zero-filled image."""
    if array.size == 0:
        return
    low, high = float(array.min()), float(array.max())
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{data}: images must be magnitudes scaled to [0, 1], got values in [{low:g}, {high:g}] "
                         f"(dtype {array.dtype}); divide each volume by its maximum, or use `lpam prepare`")


def load_evaluation_data(data: str = "embedded", split: str = "test", slices: slice | Sequence[int] | None = None,
                         contrasts: Sequence[str] = ("T1", "T2")) -> EvaluationData:
    """``data`` = "embedded" (the bundled ICBM slabs), a dataset written by `lpam prepare` (``split`` chosen
    in both; complex images when it holds measured k-space), or a .npy / .npz file holding magnitude images
    (S, C, H, W) in [0, 1] (``split`` ignored; other scales are refused, never reconstructed silently)."""
    contrasts = check_unique(contrasts, "contrasts")
    if data == "embedded":
        split_data = load_split(split, tuple(contrasts), slices)
        return EvaluationData(split_data.images, list(split_data.axial_indices), list(contrasts), f"embedded:{split}")
    if is_prepared(data):
        prepared = load_prepared(data, split)
        absent = [c for c in contrasts if c not in prepared.contrasts]
        if absent:
            raise ValueError(f"{data}: contrast(s) {absent} not prepared; it holds {', '.join(prepared.contrasts)}")
        chosen = [prepared.contrasts.index(c) for c in contrasts]
        array = prepared.images if prepared.complex_images is None else prepared.complex_images
        array = array[:, chosen]
        coils = None if prepared.coil_images is None else (prepared.coil_images[:, chosen], prepared.maps[:, chosen])
        source = f"{data}:{split}"
    else:
        array, source, coils = np.asarray(read_array(data, preferred=("images",))), str(data), None
        if np.iscomplexobj(array):
            raise ValueError(f"{data}: images must be real, finite magnitudes")
        _check_image_range(array, data)
    if array.ndim != 4 or array.shape[1] != len(contrasts):
        raise ValueError(f"{data}: expected images (slices, {len(contrasts)} contrasts, H, W), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{data}: images must be real, finite magnitudes")
    positions = list(range(array.shape[0]))
    positions = positions[slices] if isinstance(slices, slice) else positions if slices is None else list(slices)
    if not positions or any(not 0 <= p < array.shape[0] for p in positions):
        raise ValueError(f"{data}: slice selection {slices!r} is empty or outside 0..{array.shape[0] - 1}")
    dtype = np.complex64 if np.iscomplexobj(array) else np.float32
    coil_images, maps = (None, None) if coils is None else (torch.from_numpy(c[positions]) for c in coils)
    return EvaluationData(torch.from_numpy(array[positions].astype(dtype)), positions, list(contrasts), source,
                          coil_images, maps)
