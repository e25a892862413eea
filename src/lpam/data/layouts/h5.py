"""The ``h5`` layout (fastMRI / M4Raw HDF5, found recursively, read with h5py imported on first use):
``kspace`` (slices, coils, H, W) or (slices, H, W) complex, centred, and ``reconstruction_rss`` /
``reconstruction_esc`` (slices, h, w).

Subject and contrast come from the file name: M4Raw ``<subject>_<T1|T2|FLAIR|PD><rep>.h5``
(``2022061003_T101.h5``), fastMRI ``file_brain_<AXT1|AXT1PRE|AXT1POST|AXT2|AXFLAIR>_<rest>.h5`` (subject
``file_brain_<rest>``), or, for other names, ``attrs['acquisition']`` with the file's folder as the subject.
Pairing is by subject name only: public fastMRI brain files are single-contrast scans with distinct ids, so
they pair only when renamed ``<subject>_<contrast>.h5``. Several files of one subject and contrast are
repetitions (M4Raw T101..T103): by default their images are averaged (``repetitions="average"``: magnitudes,
or complex images with measured k-space, i.e. NEX averaging), ``"first"`` keeps the first by name.
Target: ``reconstruction_rss``, else ``reconstruction_esc``, else the RSS of the k-space.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lpam.data.kspace_images import image_from_kspace, inverse_fourier
from lpam.data.layouts.base import DatasetLayout, ReadOptions, Subject

M4RAW_FILE = re.compile(r"^(?P<subject>.+?)_(?P<contrast>T1CE|T1|T2|FLAIR|PD)(?P<repetition>\d*)$", re.IGNORECASE)
FASTMRI_FILE = re.compile(r"^file_brain_(?P<acquisition>AX[A-Z0-9]+)_(?P<rest>.+)$")
FASTMRI_ACQUISITIONS = {"AXT1": "T1", "AXT1PRE": "T1", "AXT1POST": "T1CE", "AXT2": "T2", "AXFLAIR": "FLAIR"}
H5_TARGETS = ("reconstruction_rss", "reconstruction_esc")


def _h5_acquisition(path: Path) -> str | None:
    """``attrs['acquisition']`` of an HDF5 file (None when absent or unreadable)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            value = handle.attrs.get("acquisition")
    except Exception:  # unreadable files are not identified here; named files fail with a clear error on reading
        return None
    return value.decode() if isinstance(value, bytes) else None if value is None else str(value)


def _h5_identity(path: Path, root: Path) -> tuple[str, str] | None:
    """(subject, contrast) of an HDF5 file from its M4Raw / fastMRI name, else from attrs['acquisition']
    with the file's folder as the subject."""
    fastmri = FASTMRI_FILE.match(path.stem)
    if fastmri:
        contrast = FASTMRI_ACQUISITIONS.get(fastmri["acquisition"])
        return (f"file_brain_{fastmri['rest']}", contrast) if contrast else None
    m4raw = M4RAW_FILE.match(path.stem)
    if m4raw:
        return m4raw["subject"], m4raw["contrast"].upper()
    contrast = FASTMRI_ACQUISITIONS.get(_h5_acquisition(path) or "")
    folder = root.name if path.parent == root else str(path.parent.relative_to(root))
    return (folder, contrast) if contrast else None


def _read_h5(path: Path, measured: bool, keep_coils: bool = False) -> np.ndarray:
    """(S, H, W) of one fastMRI / M4Raw file: the complex image of ``kspace`` when ``measured``, else the
    magnitude target (``reconstruction_rss``, ``reconstruction_esc`` or the RSS of ``kspace``); with
    ``keep_coils`` the coil images F^H y_c (S, Nc, H, W) of multi-coil ``kspace``."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            key = next((k for k in H5_TARGETS if k in handle and not measured), "kspace")
            if key not in handle:
                raise ValueError(f"{path}: holds none of {', '.join(H5_TARGETS)} or kspace (keys: {', '.join(handle)})")
            array = np.asarray(handle[key][()])
    except Exception as error:  # h5py raises OSError, KeyError... for truncated or foreign files
        if isinstance(error, ValueError) and str(path) in str(error):
            raise
        raise ValueError(f"{path}: cannot be read as HDF5 (corrupt or truncated?): {error}") from error
    expected = (3, 4) if key == "kspace" else (3,)
    if array.ndim not in expected:
        raise ValueError(f"{path}: '{key}' should have {' or '.join(map(str, expected))} dimensions "
                         f"(slices, [coils,] H, W), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: '{key}' contains NaN or infinite values")
    if keep_coils:
        if array.ndim != 4:
            raise ValueError(f"{path}: --keep-coils needs multi-coil k-space (slices, coils, H, W), "
                             f"got shape {array.shape}")
        return inverse_fourier(array)
    return image_from_kspace(array, measured) if key == "kspace" else array.astype(np.float32)


class H5Layout(DatasetLayout):
    """fastMRI / M4Raw HDF5 files anywhere below the dataset folder; repetitions averaged or the first kept."""

    name = "h5"
    hint = "<subject>_<contrast>[<rep>].h5 (M4Raw), file_brain_<ACQ>_<id>.h5 (fastMRI) or attrs['acquisition']"
    detection_rank = 40
    holds_kspace = True
    keeps_coils = True

    def discover(self, root: Path) -> list[Subject]:
        """The subjects of the recognised .h5 files below ``root``, sorted by name, every repetition listed."""
        subjects: dict[str, Subject] = {}
        for path in sorted(root.rglob("*.h5")):
            identity = _h5_identity(path, root)
            if identity:
                subject = subjects.setdefault(identity[0], Subject(identity[0]))
                subject.repetitions.setdefault(identity[1], []).append(path)
                subject.files.setdefault(identity[1], path)
        return [subjects[name] for name in sorted(subjects)]

    def load_volume(self, subject: Subject, contrast: str, options: ReadOptions) -> np.ndarray:
        """The mean of the contrast's repetitions (``options.repetitions`` "average") or its first; an error
        naming the file of a repetition with another shape."""
        paths = subject.repetitions[contrast]
        paths = paths if options.repetitions == "average" else paths[:1]
        scans = [_read_h5(path, options.measured, options.keep_coils) for path in paths]
        for path, scan in zip(paths[1:], scans[1:]):
            if scan.shape != scans[0].shape:
                raise ValueError(f"{path}: shape {scan.shape} differs from the repetition {paths[0]} {scans[0].shape}")
        return np.mean(scans, axis=0) if len(scans) > 1 else scans[0]
