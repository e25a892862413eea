"""The ``ismrmrd`` layout: ISMRMRD raw data (:mod:`lpam.data.ismrmrd`), one file per subject and contrast, found
recursively: ``<subject>/<contrast>.h5`` (``sub01/T1.h5``) or ``<subject>_<contrast>.h5`` (``sub01_T2.h5``),
contrast one of T1, T1CE, T2, FLAIR, PD (case ignored). Only HDF5 files holding an ISMRMRD header
(``/dataset/xml``) count, so fastMRI / M4Raw files are left to the ``h5`` layout.

Prepared data are training targets, so the k-space must be Cartesian and fully sampled (every encoded
phase-encode line present; prospectively undersampled data is for `lpam reconstruct --input-type ismrmrd`).
Magnitudes are the root sum of squares over the coils, measured complex images the SENSE-1 combination
(:func:`lpam.data.kspace_images.image_from_kspace`), and ``--keep-coils`` keeps the coil images.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lpam.data.ismrmrd.header import CARTESIAN
from lpam.data.ismrmrd.reader import read_ismrmrd
from lpam.data.kspace_images import image_from_kspace, inverse_fourier
from lpam.data.layouts.base import DatasetLayout, ReadOptions, Subject

ISMRMRD_FILE = re.compile(r"^(?:(?P<subject>.+)_)?(?P<contrast>T1CE|T1|T2|FLAIR|PD)$", re.IGNORECASE)
HEADER = "dataset/xml"  # the ISMRMRD header dataset: what tells an ISMRMRD file from other HDF5


def _is_ismrmrd(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file with an ISMRMRD header (unreadable files are not)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return HEADER in handle
    except Exception:  # not HDF5, truncated: not recognised here; a named file fails clearly when read
        return False


def _identity(path: Path, root: Path) -> tuple[str, str] | None:
    """(subject, contrast) from the file name; without a subject prefix the subject is the file's folder."""
    match = ISMRMRD_FILE.match(path.stem)
    if not match:
        return None
    folder = root.name if path.parent == root else str(path.parent.relative_to(root))
    return match["subject"] or folder, match["contrast"].upper()


def _fully_sampled_kspace(path: Path) -> np.ndarray:
    """The centred k-space (S, Nc, H, W) of a Cartesian, fully sampled ISMRMRD file; errors otherwise."""
    scan = read_ismrmrd(path)
    if scan.trajectory != CARTESIAN:
        raise ValueError(f"{path}: {scan.trajectory} data; `lpam prepare` needs Cartesian ISMRMRD data "
                         "(reconstruct radial data with `lpam reconstruct --input-type ismrmrd`)")
    lines = scan.mask[0]
    if not lines.all():
        raise ValueError(f"{path}: undersampled ({int(lines.sum())} of {lines.size} phase-encode lines); `lpam "
                         "prepare` needs fully sampled k-space for training targets (reconstruct undersampled data "
                         "with `lpam reconstruct --input-type ismrmrd`)")
    return scan.kspace


class IsmrmrdLayout(DatasetLayout):
    """ISMRMRD files named by contrast, per subject folder or with a subject prefix."""

    name = "ismrmrd"
    hint = "ISMRMRD raw data <subject>/<contrast>.h5 or <subject>_<contrast>.h5 (Cartesian, fully sampled)"
    detection_rank = 35  # before h5: an ISMRMRD file named <subject>_T1.h5 also matches M4Raw's names
    holds_kspace = True
    keeps_coils = True

    def discover(self, root: Path) -> list[Subject]:
        """The subjects of the ISMRMRD files below ``root``, sorted by name; an error for two files of one
        subject and contrast."""
        subjects: dict[str, Subject] = {}
        for path in sorted(root.rglob("*.h5")):
            identity = _identity(path, root)
            if identity is None or not _is_ismrmrd(path):
                continue
            subject = subjects.setdefault(identity[0], Subject(identity[0]))
            if identity[1] in subject.files:
                raise ValueError(f"{path}: a second {identity[1]} file of subject {identity[0]} "
                                 f"(the first: {subject.files[identity[1]]}); keep one")
            subject.files[identity[1]] = path
        return [subjects[name] for name in sorted(subjects)]

    def load_volume(self, subject: Subject, contrast: str, options: ReadOptions) -> np.ndarray:
        """RSS magnitudes (S, H, W), complex images with ``options.measured``, coil images (S, Nc, H, W)
        with ``options.keep_coils``."""
        path = subject.files[contrast]
        kspace = _fully_sampled_kspace(path)
        if options.keep_coils:
            if kspace.shape[1] == 1:
                raise ValueError(f"{path}: --keep-coils needs multi-coil k-space, the file has one coil")
            return inverse_fourier(kspace)
        return image_from_kspace(kspace if kspace.shape[1] > 1 else kspace[:, 0], options.measured)
