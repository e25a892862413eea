"""The ``npz`` layout: a folder of .npz files (or one .npz), one subject each, one array per contrast under its
name (``T1``, ``T2``, ``FLAIR``...; case ignored) and optional k-space ``K_<contrast>`` (or ``K1``/``K2``);
stacks are (S, H, W), slices first (numpy order)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lpam.data.layouts.arrays import ArrayLayout, kspace_contrast
from lpam.data.layouts.base import DATASET_CONTRASTS, Subject


def _npz_keys(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """{contrast: key} of the images and of the k-space held in one subject's .npz."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
    except Exception as error:  # zipfile / OSError for truncated or foreign files
        raise ValueError(f"{path}: cannot be read as .npz (corrupt or truncated?): {error}") from error
    images = {key.upper(): key for key in keys if key.upper() in DATASET_CONTRASTS}
    kspace = {kspace_contrast(key): key for key in keys if kspace_contrast(key)}
    return images, kspace


class NpzLayout(ArrayLayout):
    """.npz archives, one per subject, keyed by contrast; one archive alone is a dataset of one subject."""

    name = "npz"
    hint = ".npz files with one array per contrast (keys T1, T2, ...)"
    detection_rank = 60
    slice_axis = "first"

    def reads_file(self, path: Path) -> bool:
        """One .npz file is a dataset of one subject."""
        return path.suffix == ".npz"

    def discover(self, root: Path) -> list[Subject]:
        """One subject per .npz file in ``root`` (or ``root`` itself) holding contrast or k-space arrays."""
        subjects = []
        for path in [root] if root.is_file() else sorted(root.glob("*.npz")):
            images, kspace = _npz_keys(path)
            if images or kspace:
                subjects.append(Subject(path.stem, {c: path for c in images}, kspace={c: path for c in kspace}))
        return subjects

    def array_key(self, path: Path, contrast: str, kspace: bool) -> str:
        """The archive's key of the contrast's image or k-space (case as stored)."""
        return _npz_keys(path)[1 if kspace else 0][contrast]
