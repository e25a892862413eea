"""Readers for public dataset layouts and `lpam prepare` (SPEC.md section 6).

Layouts done so far (NIfTI, read with nibabel; slices along the volume's last axis):
* ``brats``: one folder per subject with ``<id>_t1/t1ce/t2/flair.nii.gz`` (BraTS 2018-2021) or
  ``<id>-t1n/t1c/t2w/t2f.nii.gz`` (BraTS 2023);
* ``bids``: ``sub-*/[ses-*/]anat/*_T1w/_T2w/_FLAIR/_PDw.nii[.gz]``;
* ``ixi``: flat ``IXI<nnn>-<site>-<nnnn>-<T1|T2|PD>.nii.gz``, paired by the subject prefix; the contrasts
  are resampled (trilinear, nibabel.processing) onto the T2 grid (the first contrast's without T2).
Contrast names: T1, T1CE, T2, FLAIR, PD.

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
from typing import Sequence

import nibabel
import numpy as np
from tqdm import tqdm

from lpam.data.prepared import SPLITS, save_prepared

FORMATS = ("brats", "bids", "ixi")
BRATS_NAMES = {"T1": ("t1", "t1n"), "T1CE": ("t1ce", "t1c"), "T2": ("t2", "t2w"), "FLAIR": ("flair", "t2f")}
BIDS_SUFFIXES = {"T1": "T1w", "T2": "T2w", "FLAIR": "FLAIR", "PD": "PDw"}
IXI_CONTRASTS = ("T1", "T2", "PD")
NIFTI = re.compile(r"\.nii(\.gz)?$")
IXI_FILE = re.compile(r"^(IXI\d+-[A-Za-z]+-\d+)-(T1|T2|PD)\.nii(\.gz)?$")


@dataclass
class Subject:
    """One subject (or session) with one file per found contrast."""

    name: str
    files: dict[str, Path] = field(default_factory=dict)


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


READERS = {"brats": _brats_subjects, "bids": _bids_subjects, "ixi": _ixi_subjects}


def detect_format(root: Path) -> str:
    """``bids`` when sub-* folders exist, ``ixi`` for flat IXI file names, ``brats`` when subject folders
    hold BraTS file names."""
    if any(root.glob("sub-*/anat")) or any(root.glob("sub-*/ses-*/anat")):
        return "bids"
    if _ixi_subjects(root):
        return "ixi"
    if _brats_subjects(root):
        return "brats"
    raise ValueError(f"{root}: unknown dataset layout; pass --format (one of {', '.join(FORMATS)})")


def find_subjects(root: str | Path, data_format: str | None, contrasts: Sequence[str]) -> tuple[list[Subject], dict[str, list[str]], str]:
    """Subjects having every requested contrast, the others with their missing contrasts, and the format."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if not any(root.iterdir()):
        raise ValueError(f"dataset folder is empty: {root}")
    data_format = data_format or detect_format(root)
    if data_format not in FORMATS:
        raise ValueError(f"unknown --format {data_format!r}; choose one of {', '.join(FORMATS)}")
    known = {"brats": BRATS_NAMES, "bids": BIDS_SUFFIXES, "ixi": IXI_CONTRASTS}[data_format]
    unknown = [c for c in contrasts if c not in known]
    if unknown:
        raise ValueError(f"contrast(s) {unknown} do not exist in the {data_format} layout; use {', '.join(known)}")
    found = READERS[data_format](root)
    complete = [s for s in found if all(c in s.files for c in contrasts)]
    missing = {s.name: [c for c in contrasts if c not in s.files] for s in found if s not in complete}
    if not complete:
        raise ValueError(f"{root}: no subject has all of {', '.join(contrasts)} in the {data_format} layout")
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


def normalise(volume: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the 99.9th percentile inside the foreground (voxels above 5% of it), clipped."""
    positive = volume[volume > 0]
    if positive.size == 0:
        raise ValueError("the volume is empty (no positive voxel)")
    top = np.percentile(positive, 99.9)
    foreground = volume[volume > 0.05 * top]
    scale = np.percentile(foreground, 99.9) if foreground.size else top
    return np.clip(volume / scale, 0.0, 1.0).astype(np.float32)


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


def prepare(root: str | Path, out: str | Path, contrasts: Sequence[str] = ("T1", "T2"), size: tuple[int, int] = (160, 180),
            data_format: str | None = None, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
            min_foreground: float = 0.1, progress: bool = True) -> dict:
    """`lpam prepare`: read, pair, select, crop, normalise and split; writes ``out`` (.npz) and returns a
    summary {format, subjects and slices per split, skipped subjects with their missing contrasts}."""
    if len(contrasts) < 2:
        raise ValueError(f"joint reconstruction needs at least 2 contrasts, got {list(contrasts)}")
    if abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    if Path(out).suffix != ".npz":
        raise ValueError(f"--out must end in .npz, got {out}")
    subjects, missing, data_format = find_subjects(root, data_format, contrasts)
    parts = {split: {"images": [], "subjects": [], "slices": []} for split in SPLITS}
    assignment = subject_splits([s.name for s in subjects], fractions)
    for subject in tqdm(subjects, desc="prepare", disable=not progress, dynamic_ncols=True):
        reference = None
        if data_format == "ixi":
            reference = subject.files["T2"] if "T2" in contrasts else subject.files[contrasts[0]]
        volumes = [read_volume(subject.files[c], onto=reference) for c in contrasts]
        for contrast, volume in zip(contrasts[1:], volumes[1:]):
            if volume.shape != volumes[0].shape:
                raise ValueError(f"{subject.files[contrast]}: grid {volume.shape} differs from "
                                 f"{subject.files[contrasts[0]]} {volumes[0].shape}; register / resample first")
        stack = np.stack([normalise(v) for v in volumes])  # (C, X, Y, Z)
        stack = crop_or_pad(np.moveaxis(stack, -1, 1), size)  # (C, Z, H, W)
        foreground = (stack[0] > 0.05).mean(axis=(-2, -1))
        split = assignment[subject.name]
        for z in np.flatnonzero(foreground >= min_foreground):
            parts[split]["images"].append(stack[:, z])
            parts[split]["subjects"].append(subject.name)
            parts[split]["slices"].append(int(z))
    arrays = {split: {"images": np.stack(p["images"]) if p["images"] else np.zeros((0, len(contrasts), *size)),
                      "subjects": p["subjects"], "slices": p["slices"]} for split, p in parts.items()}
    save_prepared(out, arrays, list(contrasts), data_format)
    return {
        "format": data_format,
        "splits": {split: {"subjects": len(set(p["subjects"])), "slices": len(p["slices"])} for split, p in parts.items()},
        "skipped": missing,
    }
