"""Readers for public dataset layouts and `lpam prepare` (docs/method.md sections 6 and 7).

NIfTI layouts (read with nibabel; slices along the volume's last axis):
* ``brats``: one folder per subject with ``<id>_t1/t1ce/t2/flair.nii.gz`` (BraTS 2018-2021) or
  ``<id>-t1n/t1c/t2w/t2f.nii.gz`` (BraTS 2023);
* ``bids``: ``sub-*/[ses-*/]anat/*_T1w/_T2w/_FLAIR/_PDw.nii[.gz]``;
* ``ixi``: flat ``IXI<nnn>-<site>-<nnnn>-<T1|T2|PD>.nii.gz``, paired by the subject prefix; the contrasts
  are resampled (trilinear, nibabel.processing) onto the T2 grid (the first contrast's without T2).
Array layouts (k-space is centred, DC in the middle, as F of docs/method.md section 5):
* ``h5`` (fastMRI / M4Raw HDF5, found recursively): ``kspace`` (slices, coils, H, W) or (slices, H, W)
  complex, ``reconstruction_rss`` / ``reconstruction_esc`` (slices, h, w). Subject and contrast come from
  the file name: M4Raw ``<subject>_<T1|T2|FLAIR|PD><rep>.h5`` (``2022061003_T101.h5``), fastMRI
  ``file_brain_<AXT1|AXT1PRE|AXT1POST|AXT2|AXFLAIR>_<rest>.h5`` (subject ``file_brain_<rest>``), or, for
  other names, ``attrs['acquisition']`` with the file's folder as the subject. Pairing is by subject
  name only: public fastMRI brain files are single-contrast scans with distinct ids, so they pair only
  when renamed ``<subject>_<contrast>.h5``. Several files of one subject and contrast are repetitions
  (M4Raw T101..T103): by default their images are averaged (``repetitions="average"``: magnitudes, or
  complex images with measured k-space, i.e. NEX averaging), ``"first"`` keeps the first by name.
  Target: ``reconstruction_rss``, else ``reconstruction_esc``, else the RSS of the k-space.
* ``mat`` (the layout of the published LPAM code): ``T1.mat``, ``T2.mat`` (any of T1, T1CE, T2, FLAIR,
  PD) holding an image stack (real or complex; magnitudes are used), optional ``K1.mat`` / ``K2.mat``
  (k-space of T1 / T2; ``K_<contrast>.mat`` for others), one folder per subject or one flat folder (one
  subject); an optional ``mask*.mat`` in the dataset folder is stored in the prepared file when its shape
  is the prepared size (else reported). Stacks are (H, W, S), slices last (MATLAB order).
* ``npz``: a folder of .npz files (or one .npz), one subject each, one array per contrast under its name
  (``T1``, ``T2``, ``FLAIR``...; case ignored) and optional k-space ``K_<contrast>`` (or ``K1``/``K2``);
  stacks are (S, H, W), slices first (numpy order).
A 2-D array is one slice; ``slice_axis`` ("first" / "last", CLI ``--slice-axis``) overrides the .mat / .npz
convention. Contrast names: T1, T1CE, T2, FLAIR, PD.

Measured k-space (``measured_kspace=True``, CLI ``--measured-kspace``; h5, mat and npz): instead of a
magnitude target (from which training re-simulates single-coil k-space with a random phase), prepare
keeps x = F^H y, the complex image of the measured k-space, cropped in image space and scaled like the
magnitudes but not clipped; training and evaluation then use F x (exact when nothing is cropped, the
measurement restricted to the field of view otherwise) and |x| as the target, re-simulating nothing.
Multi-coil k-space is combined into one virtual coil (:func:`combine_coils`), unless ``keep_coils=True``
(CLI ``--keep-coils``, h5 only, docs/method.md section 7): then prepare keeps the coil images x_c = F^H y_c and
coil maps S_c estimated once per slice and contrast from the central ``CALIBRATION`` x ``CALIBRATION``
block of the measured (fully sampled) k-space (:func:`lpam.physics.coils.estimate_coil_maps`, ``lowres``:
sum_c |S_c|^2 = 1 on the object, 0 outside), both cropped in image space and scaled like the complex image
x = sum_c conj(S_c) x_c (SENSE-1), which is the stored complex image and whose magnitude is the target.
Training and evaluation then use the measured coil k-space P F x_c with A_c = P F S_c.

prepare: pair the contrasts of each subject; keep slices whose foreground (in the first contrast, after
scaling: pixels above 0.05) covers at least ``min_foreground`` of the slice; centre crop /
zero-pad to the requested size; scale each volume to [0, 1] by the 99.9th percentile of its foreground
(then clip); split deterministically **by subject** (subjects ordered by a hash of their id, then cut
by the split fractions).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import nibabel
import numpy as np
import torch
from tqdm import tqdm

from lpam.data.files import read_array
from lpam.data.prepared import SPLITS, save_prepared
from lpam.physics.coils import estimate_coil_maps, sensitivity_combine
from lpam.physics.fourier import fft2c, ifft2c
from lpam.io import check_output_file
from lpam.options import check_unique
from lpam.physics.masks import load_mask

FORMATS = ("brats", "bids", "ixi", "h5", "mat", "npz")
KSPACE_FORMATS = ("h5", "mat", "npz")
CONTRASTS = ("T1", "T1CE", "T2", "FLAIR", "PD")
BRATS_NAMES = {"T1": ("t1", "t1n"), "T1CE": ("t1ce", "t1c"), "T2": ("t2", "t2w"), "FLAIR": ("flair", "t2f")}
BIDS_SUFFIXES = {"T1": "T1w", "T2": "T2w", "FLAIR": "FLAIR", "PD": "PDw"}
IXI_CONTRASTS = ("T1", "T2", "PD")
NIFTI = re.compile(r"\.nii(\.gz)?$")
IXI_FILE = re.compile(r"^(IXI\d+-[A-Za-z]+-\d+)-(T1|T2|PD)\.nii(\.gz)?$")
M4RAW_FILE = re.compile(r"^(?P<subject>.+?)_(?P<contrast>T1CE|T1|T2|FLAIR|PD)(?P<repetition>\d*)$", re.IGNORECASE)
FASTMRI_FILE = re.compile(r"^file_brain_(?P<acquisition>AX[A-Z0-9]+)_(?P<rest>.+)$")
FASTMRI_ACQUISITIONS = {"AXT1": "T1", "AXT1PRE": "T1", "AXT1POST": "T1CE", "AXT2": "T2", "AXFLAIR": "FLAIR"}
KSPACE_NAME = re.compile(r"^K(?:_(?P<contrast>[A-Z0-9]+)|(?P<number>[12]))$", re.IGNORECASE)
H5_TARGETS = ("reconstruction_rss", "reconstruction_esc")
CALIBRATION = 24  # side of the central k-space block the coil maps are estimated from (--keep-coils)
SLICE_AXES = {"mat": "last", "npz": "first"}
MIN_PREPARED_SIZE = 8  # px: the smallest --size that a network can reconstruct
LAYOUT_HINTS = {
    "brats": "subject folders with <id>_t1/_t2... .nii.gz",
    "bids": "sub-*/anat/*_T1w.nii.gz ...",
    "ixi": "IXI<id>-<site>-<nnnn>-T1/T2/PD.nii.gz",
    "h5": "<subject>_<contrast>[<rep>].h5 (M4Raw), file_brain_<ACQ>_<id>.h5 (fastMRI) or attrs['acquisition']",
    "mat": "T1.mat, T2.mat (optional K1.mat, K2.mat) in one folder or one folder per subject",
    "npz": ".npz files with one array per contrast (keys T1, T2, ...)",
}


@dataclass
class Subject:
    """One subject (or session): one file per found contrast; for h5 every repetition of a contrast
    (``files[c]`` is the first); for mat / npz the files holding k-space per contrast."""

    name: str
    files: dict[str, Path] = field(default_factory=dict)
    repetitions: dict[str, list[Path]] = field(default_factory=dict)
    kspace: dict[str, Path] = field(default_factory=dict)


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and NIFTI.search(p.name))


def _brats_subjects(root: Path) -> list[Subject]:
    subjects = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        subject = Subject(folder.name)
        for path in _nifti_files(folder):
            stem = NIFTI.sub("", path.name).lower()
            for contrast, names in BRATS_NAMES.items():
                if any(stem.endswith(f"_{n}") or stem.endswith(f"-{n}") for n in names):
                    subject.files[contrast] = path
        if subject.files:
            subjects.append(subject)
    return subjects


def _bids_subjects(root: Path) -> list[Subject]:
    subjects = []
    for anat in sorted(root.glob("sub-*/anat")) + sorted(root.glob("sub-*/ses-*/anat")):
        name = "_".join(part for part in anat.relative_to(root).parts[:-1])
        subject = Subject(name)
        for path in _nifti_files(anat):
            stem = NIFTI.sub("", path.name)
            for contrast, suffix in BIDS_SUFFIXES.items():
                if stem.endswith(f"_{suffix}"):
                    subject.files[contrast] = path
        if subject.files:
            subjects.append(subject)
    return subjects


def _ixi_subjects(root: Path) -> list[Subject]:
    subjects: dict[str, Subject] = {}
    for path in _nifti_files(root):
        match = IXI_FILE.match(path.name)
        if match:
            subjects.setdefault(match.group(1), Subject(match.group(1))).files[match.group(2)] = path
    return [subjects[name] for name in sorted(subjects)]


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


def _h5_subjects(root: Path) -> list[Subject]:
    subjects: dict[str, Subject] = {}
    for path in sorted(root.rglob("*.h5")):
        identity = _h5_identity(path, root)
        if identity:
            subject = subjects.setdefault(identity[0], Subject(identity[0]))
            subject.repetitions.setdefault(identity[1], []).append(path)
            subject.files.setdefault(identity[1], path)
    return [subjects[name] for name in sorted(subjects)]


def _kspace_contrast(name: str) -> str | None:
    """The contrast whose k-space a file / key holds: K1 -> T1, K2 -> T2, K_<contrast> -> contrast."""
    match = KSPACE_NAME.match(name)
    if not match:
        return None
    contrast = {"1": "T1", "2": "T2"}[match["number"]] if match["number"] else match["contrast"].upper()
    return contrast if contrast in CONTRASTS else None


def _mat_subjects(root: Path) -> list[Subject]:
    subjects = []
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        subject = Subject(folder.name)
        for path in sorted(folder.glob("*.mat")):
            if path.stem.upper() in CONTRASTS:
                subject.files[path.stem.upper()] = path
            elif _kspace_contrast(path.stem):
                subject.kspace[_kspace_contrast(path.stem)] = path
        if subject.files or subject.kspace:
            subjects.append(subject)
    return subjects


def _npz_keys(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """{contrast: key} of the images and of the k-space held in one subject's .npz."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
    except Exception as error:  # zipfile / OSError for truncated or foreign files
        raise ValueError(f"{path}: cannot be read as .npz (corrupt or truncated?): {error}") from error
    images = {key.upper(): key for key in keys if key.upper() in CONTRASTS}
    kspace = {_kspace_contrast(key): key for key in keys if _kspace_contrast(key)}
    return images, kspace


def _npz_subjects(root: Path) -> list[Subject]:
    subjects = []
    for path in [root] if root.is_file() else sorted(root.glob("*.npz")):
        images, kspace = _npz_keys(path)
        if images or kspace:
            subjects.append(Subject(path.stem, {c: path for c in images}, kspace={c: path for c in kspace}))
    return subjects


READERS = {"brats": _brats_subjects, "bids": _bids_subjects, "ixi": _ixi_subjects, "h5": _h5_subjects,
           "mat": _mat_subjects, "npz": _npz_subjects}


def detect_format(root: Path) -> str:
    """``npz`` for one .npz file; for a folder: ``bids`` when sub-* folders exist, ``ixi`` for flat IXI
    file names, ``brats`` when subject folders hold BraTS file names, ``h5`` for recognised HDF5 files,
    ``mat`` for T1.mat-style files, ``npz`` for .npz files holding contrast arrays."""
    if root.is_file():
        if root.suffix == ".npz":
            return "npz"
    elif any(root.glob("sub-*/anat")) or any(root.glob("sub-*/ses-*/anat")):
        return "bids"
    else:
        for data_format in ("ixi", "brats", "h5", "mat", "npz"):
            if READERS[data_format](root):
                return data_format
    raise ValueError(f"{root}: unknown dataset layout; pass --format (one of {', '.join(FORMATS)})")


def find_subjects(root: str | Path, data_format: str | None, contrasts: Sequence[str],
                  measured_kspace: bool = False) -> tuple[list[Subject], dict[str, list[str]], str]:
    """Subjects having every requested contrast (with ``measured_kspace``, the k-space of each for mat /
    npz), the others with what they miss, and the format."""
    root = Path(root)
    if root.is_file() and root.suffix == ".npz":
        if data_format not in (None, "npz"):
            raise ValueError(f"{root} is one .npz file: use --format npz or pass a dataset folder")
    elif not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    elif not any(root.iterdir()):
        raise ValueError(f"dataset folder is empty: {root}")
    data_format = data_format or detect_format(root)
    if data_format not in FORMATS:
        raise ValueError(f"unknown --format {data_format!r}; choose one of {', '.join(FORMATS)}")
    if measured_kspace and data_format not in KSPACE_FORMATS:
        raise ValueError(f"--measured-kspace needs k-space, which the {data_format} layout does not hold; "
                         f"use one of {', '.join(KSPACE_FORMATS)}")
    known = {"brats": BRATS_NAMES, "bids": BIDS_SUFFIXES, "ixi": IXI_CONTRASTS}.get(data_format, CONTRASTS)
    unknown = [c for c in contrasts if c not in known]
    if unknown:
        raise ValueError(f"contrast(s) {unknown} do not exist in the {data_format} layout; use {', '.join(known)}")
    found = READERS[data_format](root)
    if not found:
        raise ValueError(f"{root}: found no {data_format} dataset files; expected {LAYOUT_HINTS[data_format]}")
    in_files = measured_kspace and data_format in ("mat", "npz")

    def absent(subject: Subject) -> list[str]:
        if in_files:
            return [f"{c} k-space" for c in contrasts if c not in subject.kspace]
        return [c for c in contrasts if c not in subject.files and c not in subject.kspace]

    complete = [s for s in found if not absent(s)]
    missing = {s.name: absent(s) for s in found if absent(s)}
    if not complete:
        wanted = ", ".join(contrasts) + (" (with k-space)" if in_files else "")
        raise ValueError(f"{root}: no subject has all of {wanted} in the {data_format} layout")
    return complete, missing, data_format


def _load_nifti(path: Path, voxels: bool = True) -> nibabel.spatialimages.SpatialImage:
    """The NIfTI image (header, and the voxels unless ``voxels`` is False), or a clear error."""
    try:
        image = nibabel.load(str(path))
        if voxels:
            image.get_fdata(dtype=np.float32)  # read (and cache) the voxels now: a truncated file fails here
    except Exception as error:  # nibabel raises several types for truncated or foreign files
        raise ValueError(f"{path}: cannot be read as NIfTI (corrupt or truncated?): {error}") from error
    return image


def read_volume(path: Path, onto: Path | None = None) -> np.ndarray:
    """A 3-D NIfTI volume as float32, resampled (trilinear) onto the grid of ``onto`` when that is another
    file on a different grid; a clear error for a corrupt, non-3-D or unresamplable file."""
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
    return volume


def _inverse_fourier(kspace: np.ndarray) -> np.ndarray:
    """F^H y over the last two axes (lpam.physics.fourier.ifft2c), complex64."""
    return ifft2c(torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64))).numpy()


def combine_coils(kspace: np.ndarray) -> np.ndarray:
    """One complex image per slice from multi-coil k-space (S, coils, H, W): the SENSE-1 image
    x = sum_c conj(S_c) F^H y_c with ``lowres`` maps S_c (lpam.physics.coils.estimate_coil_maps) from the
    central ``CALIBRATION`` block, kept wherever the coils see any signal. sum_c |S_c|^2 = 1, so |x| is close
    to the RSS image, and F x is a virtual coil: a linear function of the measured k-space, nothing
    re-simulated."""
    coil_kspace = torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64))
    calibration = (min(CALIBRATION, kspace.shape[-2]), min(CALIBRATION, kspace.shape[-1]))
    maps = estimate_coil_maps(coil_kspace, calibration, method="lowres", threshold=1e-6)
    return sensitivity_combine(ifft2c(coil_kspace), maps).numpy()


def image_from_kspace(kspace: np.ndarray, measured: bool) -> np.ndarray:
    """(S, H, W) from centred k-space (S, H, W) or (S, coils, H, W): with ``measured`` the complex image
    F^H y (coils combined by :func:`combine_coils`), else its magnitude (root-sum-of-squares over coils)."""
    if kspace.ndim == 4:
        if measured:
            return combine_coils(kspace)
        return np.sqrt(np.square(np.abs(_inverse_fourier(kspace))).sum(1))
    image = _inverse_fourier(kspace)
    return image if measured else np.abs(image)


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
        return _inverse_fourier(array)
    return image_from_kspace(array, measured) if key == "kspace" else array.astype(np.float32)


def _read_stack(path: Path, key: str, slice_axis: str) -> np.ndarray:
    """A 2-D slice or 3-D stack from a .mat / .npz file as (S, H, W), slices on ``slice_axis``."""
    array = read_array(path, preferred=(key,))
    if array.ndim not in (2, 3):
        raise ValueError(f"{path}: expected a 2-D slice or a 3-D stack ({key}), got shape {array.shape}")
    return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0) if slice_axis == "last" else array


def _check_centred(kspace: np.ndarray, path: Path) -> None:
    """Measured k-space must be centred (its energy peak near the middle), as F of docs/method.md section 5."""
    energy = np.abs(kspace).reshape(-1, *kspace.shape[-2:]).sum(0)
    peak = np.unravel_index(int(np.argmax(energy)), energy.shape)
    if all(abs(p - n // 2) > n // 4 for p, n in zip(peak, energy.shape)):
        raise ValueError(f"{path}: the k-space peak lies at {tuple(int(p) for p in peak)}, not near the centre: "
                         "store centred k-space (numpy.fft.fftshift over the last two axes)")


def _array_volume(subject: Subject, contrast: str, data_format: str, measured: bool, slice_axis: str) -> np.ndarray:
    """(S, H, W) of one contrast of a mat / npz subject: the complex image of its k-space when ``measured``,
    else the magnitude of its image (or of its k-space's image when it has none)."""
    def key(path: Path, kspace: bool) -> str:
        if data_format == "npz":
            return _npz_keys(path)[1 if kspace else 0][contrast]
        return path.stem

    if measured or contrast not in subject.files:
        path = subject.kspace[contrast]
        kspace = _read_stack(path, key(path, True), slice_axis)
        _check_centred(kspace, path)
        return image_from_kspace(kspace, measured)
    path = subject.files[contrast]
    return np.abs(_read_stack(path, key(path, False), slice_axis)).astype(np.float32)


def load_volumes(subject: Subject, contrasts: Sequence[str], data_format: str, measured: bool = False,
                 repetitions: str = "average", slice_axis: str | None = None,
                 keep_coils: bool = False) -> list[np.ndarray]:
    """One (S, H, W) volume per contrast, slices first: magnitudes (float32), or with ``measured`` complex
    images of the measured k-space, or with ``keep_coils`` (h5) coil images (S, Nc, H, W). Errors name the
    file: unreadable, wrong shape, or grids that differ."""
    if data_format in ("brats", "bids", "ixi"):
        reference = None
        if data_format == "ixi":
            reference = subject.files["T2"] if "T2" in contrasts else subject.files[contrasts[0]]
        volumes = [np.moveaxis(read_volume(subject.files[c], onto=reference), -1, 0) for c in contrasts]
    elif data_format == "h5":
        volumes = []
        for contrast in contrasts:
            paths = subject.repetitions[contrast] if repetitions == "average" else subject.repetitions[contrast][:1]
            scans = [_read_h5(path, measured, keep_coils) for path in paths]
            for path, scan in zip(paths[1:], scans[1:]):
                if scan.shape != scans[0].shape:
                    raise ValueError(f"{path}: shape {scan.shape} differs from the repetition {paths[0]} {scans[0].shape}")
            volumes.append(np.mean(scans, axis=0) if len(scans) > 1 else scans[0])
    else:
        axis = slice_axis or SLICE_AXES[data_format]
        volumes = [_array_volume(subject, c, data_format, measured, axis) for c in contrasts]
    def source(contrast: str) -> Path:  # the file a volume was read from
        from_kspace = contrast in subject.kspace and (measured or contrast not in subject.files)
        return subject.kspace[contrast] if from_kspace else subject.files[contrast]

    for contrast, volume in zip(contrasts[1:], volumes[1:]):
        if volume.shape != volumes[0].shape:
            raise ValueError(f"{source(contrast)}: grid {volume.shape} differs from {source(contrasts[0])} "
                             f"{volumes[0].shape}; register / resample first")
    return volumes


def dataset_mask(root: Path) -> Path | None:
    """The sampling mask of a .mat dataset: the one ``mask*.mat`` file in its folder (None if there is none)."""
    masks = sorted(p for p in root.glob("*.mat") if p.stem.lower().startswith("mask"))
    if len(masks) > 1:
        raise ValueError(f"{root}: several mask files ({', '.join(p.name for p in masks)}); keep one")
    return masks[0] if masks else None


def crop_or_pad(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre crop / zero-pad the last two axes to ``size``."""
    out = np.zeros(image.shape[:-2] + tuple(size), dtype=image.dtype)
    slices_in, slices_out = [], []
    for have, want in zip(image.shape[-2:], size):
        if have >= want:
            start = (have - want) // 2
            slices_in.append(slice(start, start + want))
            slices_out.append(slice(0, want))
        else:
            start = (want - have) // 2
            slices_in.append(slice(0, have))
            slices_out.append(slice(start, start + have))
    out[(..., *slices_out)] = image[(..., *slices_in)]
    return out


def normalisation_scale(volume: np.ndarray) -> float:
    """The 99.9th percentile of |volume| inside the foreground (voxels above 5% of its 99.9th percentile)."""
    magnitude = np.abs(volume) if np.iscomplexobj(volume) else volume
    positive = magnitude[magnitude > 0]
    if positive.size == 0:
        raise ValueError("the volume is empty (no positive voxel)")
    top = np.percentile(positive, 99.9)
    foreground = magnitude[magnitude > 0.05 * top]
    return float(np.percentile(foreground, 99.9) if foreground.size else top)


def _normalised(subject: Subject, contrasts: Sequence[str], volumes: list[np.ndarray],
                function: Callable[[np.ndarray], Any] | None = None) -> list[Any]:
    """``function`` (default :func:`normalise`) of each contrast's volume, an error naming the file of an
    empty (all-zero) one."""
    normalised = []
    for contrast, volume in zip(contrasts, volumes):
        try:
            normalised.append((function or normalise)(volume))
        except ValueError as error:
            source = subject.files.get(contrast) or subject.kspace.get(contrast) or subject.name
            raise ValueError(f"{source} ({contrast} of subject {subject.name}): {error}") from error
    return normalised


def normalise(volume: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by :func:`normalisation_scale`. Magnitudes are clipped at 1; complex images (measured
    k-space) are only scaled, so F x stays the scaled measurement."""
    scale = normalisation_scale(volume)
    if np.iscomplexobj(volume):
        return (volume / scale).astype(np.complex64)
    return np.clip(volume / scale, 0.0, 1.0).astype(np.float32)


def coil_volume(coil_images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From coil images x_c (S, Nc, H, W) of fully sampled k-space: (x / s, x_c / s, S_c), with coil maps S_c
    estimated per slice from the central ``CALIBRATION`` block of F x_c (``lowres``), the SENSE-1 image
    x = sum_c conj(S_c) x_c and s = :func:`normalisation_scale` (x)."""
    kspace = fft2c(torch.from_numpy(np.ascontiguousarray(coil_images, dtype=np.complex64)))
    calibration = (min(CALIBRATION, kspace.shape[-2]), min(CALIBRATION, kspace.shape[-1]))
    maps = estimate_coil_maps(kspace, calibration, method="lowres")
    combined = sensitivity_combine(torch.from_numpy(coil_images.astype(np.complex64)), maps).numpy()
    scale = normalisation_scale(combined)
    return (combined / scale).astype(np.complex64), (coil_images / scale).astype(np.complex64), maps.numpy()


def subject_splits(names: Sequence[str], fractions: tuple[float, float, float]) -> dict[str, str]:
    """Deterministic split by subject: subjects ordered by a hash of their id, then cut by ``fractions``
    (each split with a positive fraction gets at least one subject when there are enough)."""
    order = sorted(names, key=lambda name: hashlib.sha1(name.encode()).hexdigest())
    counts = [int(round(f * len(order))) for f in fractions[:2]]
    counts = [max(c, 1) if f > 0 and len(order) >= 3 else c for c, f in zip(counts, fractions)]
    train_end, val_end = counts[0], min(counts[0] + counts[1], len(order))
    if fractions[2] > 0 and val_end == len(order) and len(order) >= 3:
        train_end, val_end = train_end - (counts[0] > 1), val_end - 1
    return {name: "train" if i < train_end else "val" if i < val_end else "test" for i, name in enumerate(order)}


def _check_prepare_options(out: str | Path, contrasts: Sequence[str], size: tuple[int, int],
                           fractions: tuple[float, float, float], min_foreground: float, repetitions: str,
                           slice_axis: str | None) -> None:
    """The checks of :func:`prepare`'s options, before any file is read."""
    if len(contrasts) < 2:
        raise ValueError(f"joint reconstruction needs at least 2 contrasts, got {list(contrasts)}")
    check_unique(contrasts)
    if len(size) != 2 or min(size) < MIN_PREPARED_SIZE:
        raise ValueError(f"--size must be two sizes H W of at least {MIN_PREPARED_SIZE} px, got {list(size)}")
    if not 0 <= min_foreground < 1:
        raise ValueError(f"--min-foreground is a fraction of the slice in [0, 1), got {min_foreground}")
    if abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    if Path(out).suffix != ".npz":
        raise ValueError(f"--out must end in .npz, got {out}")
    check_output_file(out)
    if repetitions not in ("average", "first"):
        raise ValueError(f"repetitions must be 'average' or 'first', got {repetitions!r}")
    if slice_axis not in (None, "first", "last"):
        raise ValueError(f"slice axis must be 'first' or 'last', got {slice_axis!r}")


def prepare(root: str | Path, out: str | Path, contrasts: Sequence[str] = ("T1", "T2"), size: tuple[int, int] = (160, 180),
            data_format: str | None = None, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
            min_foreground: float = 0.1, progress: bool = True, measured_kspace: bool = False,
            repetitions: str = "average", slice_axis: str | None = None, keep_coils: bool = False) -> dict:
    """`lpam prepare`: read, pair, select, crop, normalise and split; writes ``out`` (.npz) and returns a
    summary {format, subjects and slices per split, skipped subjects with what they miss, measured_kspace,
    coils (the coil count with ``keep_coils``, else None), mask (.mat layout: {file, shape, rate, stored})}."""
    _check_prepare_options(out, contrasts, size, fractions, min_foreground, repetitions, slice_axis)
    if keep_coils and not measured_kspace:
        raise ValueError("--keep-coils keeps measured multi-coil k-space: add --measured-kspace")
    subjects, missing, data_format = find_subjects(root, data_format, contrasts, measured_kspace)
    if keep_coils and data_format != "h5":
        raise ValueError(f"--keep-coils needs multi-coil k-space of the h5 layout (fastMRI / M4Raw), not {data_format}")
    mask, mask_summary = None, None
    mask_path = dataset_mask(Path(root)) if data_format == "mat" else None
    if mask_path is not None:
        mask = load_mask(mask_path)
        if mask[0, 0] and not mask[mask.shape[0] // 2, mask.shape[1] // 2]:
            raise ValueError(f"{mask_path}: the mask samples the corner but not the centre of k-space: store it "
                             "centred (numpy.fft.fftshift)")
        mask_summary = {"file": str(mask_path), "shape": list(mask.shape), "rate": float(mask.mean()),
                        "stored": mask.shape == tuple(size)}
        mask = mask if mask_summary["stored"] else None  # a k-space mask does not survive an image-space crop
    parts = {split: {"images": [], "complex": [], "coil_images": [], "maps": [], "subjects": [], "slices": []}
             for split in SPLITS}
    assignment = subject_splits([s.name for s in subjects], fractions)
    coils = None
    for subject in tqdm(subjects, desc="prepare", disable=not progress, dynamic_ncols=True):
        volumes = load_volumes(subject, contrasts, data_format, measured_kspace, repetitions, slice_axis, keep_coils)
        if keep_coils:
            coils = coils or volumes[0].shape[1]
            if volumes[0].shape[1] != coils:
                raise ValueError(f"{subject.files[contrasts[0]]}: {volumes[0].shape[1]} coils, the files before it "
                                 f"have {coils}; --keep-coils needs one coil count for the whole dataset")
            combined, coil_images, maps = zip(*_normalised(subject, contrasts, volumes, coil_volume))
            stack = crop_or_pad(np.stack(combined), size)  # (C, S, H, W)
            coil_stack, map_stack = crop_or_pad(np.stack(coil_images), size), crop_or_pad(np.stack(maps), size)
        else:
            stack = crop_or_pad(np.stack(_normalised(subject, contrasts, volumes)), size)  # (C, S, H, W)
        magnitudes = np.abs(stack) if measured_kspace else stack
        foreground = (magnitudes[0] > 0.05).mean(axis=(-2, -1))
        split = assignment[subject.name]
        for z in np.flatnonzero(foreground >= min_foreground):
            parts[split]["images"].append(magnitudes[:, z])
            if measured_kspace:
                parts[split]["complex"].append(stack[:, z])
            if keep_coils:
                parts[split]["coil_images"].append(coil_stack[:, z])
                parts[split]["maps"].append(map_stack[:, z])
            parts[split]["subjects"].append(subject.name)
            parts[split]["slices"].append(int(z))
    if not any(part["slices"] for part in parts.values()):
        raise ValueError(f"no slice of {root} has a foreground fraction >= {min_foreground} at --size "
                         f"{size[0]} {size[1]}: nothing to write; lower --min-foreground or check --size")
    arrays = {}
    for split, part in parts.items():
        arrays[split] = {key: part[key] for key in ("subjects", "slices")}
        keys = ("images", "complex") if measured_kspace else ("images",)
        for key in keys:
            arrays[split][key] = np.stack(part[key]) if part[key] else np.zeros((0, len(contrasts), *size))
        for key in ("coil_images", "maps") if keep_coils else ():
            arrays[split][key] = np.stack(part[key]) if part[key] else np.zeros((0, len(contrasts), coils, *size))
    save_prepared(out, arrays, list(contrasts), data_format, mask)
    return {
        "format": data_format,
        "splits": {split: {"subjects": len(set(p["subjects"])), "slices": len(p["slices"])} for split, p in parts.items()},
        "skipped": missing,
        "measured_kspace": measured_kspace,
        "coils": coils,
        "mask": mask_summary,
    }
