"""Array layouts (mat, npz): one image stack per contrast (real or complex; magnitudes are used), optional
k-space per contrast, read with :func:`lpam.data.files.read_array`. A 2-D array is one slice; 3-D stacks have
the layout's slice axis unless ``slice_axis`` ("first" / "last", CLI ``--slice-axis``) overrides it.
K-space must be centred (DC in the middle), as F of docs/method.md section 5."""
from __future__ import annotations

import re
from abc import abstractmethod
from pathlib import Path

import numpy as np

from lpam.data.files import read_array
from lpam.data.kspace_images import image_from_kspace
from lpam.data.layouts.base import DATASET_CONTRASTS, DatasetLayout, ReadOptions, Subject

KSPACE_NAME = re.compile(r"^K(?:_(?P<contrast>[A-Z0-9]+)|(?P<number>[12]))$", re.IGNORECASE)
NUMBERED_KSPACE = {"1": "T1", "2": "T2"}  # K1 / K2: the k-space names of the published LPAM code
CENTRE_REACH = 4  # measured k-space's energy peak must lie within 1/4 of the matrix of its centre on some axis


def kspace_contrast(name: str) -> str | None:
    """The contrast whose k-space a file / key holds: K1 -> T1, K2 -> T2, K_<contrast> -> contrast."""
    match = KSPACE_NAME.match(name)
    if not match:
        return None
    contrast = NUMBERED_KSPACE[match["number"]] if match["number"] else match["contrast"].upper()
    return contrast if contrast in DATASET_CONTRASTS else None


def read_stack(path: Path, key: str, slice_axis: str) -> np.ndarray:
    """A 2-D slice or 3-D stack from a .mat / .npz file as (S, H, W), slices on ``slice_axis``."""
    array = read_array(path, preferred=(key,))
    if array.ndim not in (2, 3):
        raise ValueError(f"{path}: expected a 2-D slice or a 3-D stack ({key}), got shape {array.shape}")
    return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0) if slice_axis == "last" else array


def check_centred(kspace: np.ndarray, path: Path) -> None:
    """Measured k-space must be centred (its energy peak near the middle), as F of docs/method.md section 5."""
    energy = np.abs(kspace).reshape(-1, *kspace.shape[-2:]).sum(0)
    peak = np.unravel_index(int(np.argmax(energy)), energy.shape)
    if all(abs(p - n // 2) > n // CENTRE_REACH for p, n in zip(peak, energy.shape)):
        raise ValueError(f"{path}: the k-space peak lies at {tuple(int(p) for p in peak)}, not near the centre: "
                         "store centred k-space (numpy.fft.fftshift over the last two axes)")


class ArrayLayout(DatasetLayout):
    """Image and k-space arrays per contrast; with measured k-space each contrast needs its k-space."""

    holds_kspace = True
    kspace_beside_images = True
    slice_axis: str  # axis of the slices in 3-D stacks unless ReadOptions.slice_axis says otherwise

    @abstractmethod
    def array_key(self, path: Path, contrast: str, kspace: bool) -> str:
        """The name of the contrast's image (or with ``kspace`` its k-space) array in ``path``."""

    def load_volume(self, subject: Subject, contrast: str, options: ReadOptions) -> np.ndarray:
        """The complex image of the contrast's k-space when ``options.measured``, else the magnitude of its
        image (or of its k-space's image when it has none)."""
        slice_axis = options.slice_axis or self.slice_axis
        if options.measured or contrast not in subject.files:
            path = subject.kspace[contrast]
            kspace = read_stack(path, self.array_key(path, contrast, True), slice_axis)
            check_centred(kspace, path)
            return image_from_kspace(kspace, options.measured)
        path = subject.files[contrast]
        return np.abs(read_stack(path, self.array_key(path, contrast, False), slice_axis)).astype(np.float32)
