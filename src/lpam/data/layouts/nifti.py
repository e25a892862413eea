"""NIfTI volumes (read with nibabel, imported on first use): the shared reader of the brats, bids and ixi
layouts, slices along the volume's last axis."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lpam.data.layouts.base import DatasetLayout, ReadOptions, Subject

if TYPE_CHECKING:
    from nibabel.spatialimages import SpatialImage

NIFTI = re.compile(r"\.nii(\.gz)?$")


def nifti_files(folder: Path) -> list[Path]:
    """The NIfTI files (.nii, .nii.gz) directly in ``folder``, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and NIFTI.search(p.name))


def _load_nifti(path: Path, voxels: bool = True) -> SpatialImage:
    """The NIfTI image (header, and the voxels unless ``voxels`` is False), or a clear error."""
    import nibabel

    try:
        image = nibabel.load(str(path))
        if voxels:
            image.get_fdata(dtype=np.float32)  # read (and cache) the voxels now: a truncated file fails here
    except Exception as error:  # nibabel raises several types for truncated or foreign files
        raise ValueError(f"{path}: cannot be read as NIfTI (corrupt or truncated?): {error}") from error
    return image


def read_volume(path: Path, onto: Path | None = None) -> np.ndarray:
    """A 3-D NIfTI volume as float32 (S, H, W), slices first, resampled (trilinear) onto the grid of ``onto``
    when that is another file on a different grid; a clear error for a corrupt, non-3-D or unresamplable file."""
    image = _load_nifti(path)
    if onto is not None and onto != path:
        reference = _load_nifti(onto, voxels=False)  # only its grid is needed
        if image.shape[:3] != reference.shape[:3] or not np.allclose(image.affine, reference.affine):
            from nibabel.processing import resample_from_to

            try:
                image = resample_from_to(image, (reference.shape[:3], reference.affine), order=1)
            except Exception as error:
                raise ValueError(f"{path}: cannot be resampled onto the grid of {onto}: {error}") from error
    volume = np.squeeze(np.asarray(image.get_fdata(dtype=np.float32)))
    if volume.ndim != 3:
        raise ValueError(f"{path}: expected a 3-D volume, got shape {volume.shape}")
    if not np.isfinite(volume).all():
        raise ValueError(f"{path}: contains NaN or infinite values")
    return np.moveaxis(volume, -1, 0)


class NiftiLayout(DatasetLayout):
    """A layout of NIfTI magnitude volumes, one file per subject and contrast, each on its own grid."""

    def load_volume(self, subject: Subject, contrast: str, options: ReadOptions) -> np.ndarray:
        """The contrast's volume as (S, H, W) float32 (NIfTI holds no k-space: ``options`` change nothing)."""
        return read_volume(subject.files[contrast])
