"""`lpam prepare` (docs/method.md sections 6 and 7): pair the contrasts of each subject of a dataset layout
(lpam.data.layouts); keep slices whose foreground (in the first contrast, after scaling: pixels above
``FOREGROUND_LEVEL``) covers at least ``min_foreground`` of the slice; centre crop / zero-pad to the requested
size; scale each volume to [0, 1] by the 99.9th percentile of its foreground (then clip); split
deterministically **by subject** (subjects ordered by a hash of their id, then cut by the split fractions).

Measured k-space (``measured_kspace=True``, CLI ``--measured-kspace``; layouts that hold k-space): instead of
a magnitude target (from which training re-simulates single-coil k-space with a random phase), prepare keeps
x = F^H y, the complex image of the measured k-space (lpam.data.kspace_images), cropped in image space and
scaled like the magnitudes but not clipped; training and evaluation then use F x (exact when nothing is
cropped, the measurement restricted to the field of view otherwise) and |x| as the target, re-simulating
nothing. With ``keep_coils=True`` (CLI ``--keep-coils``, h5 only, docs/method.md section 7) prepare keeps the
coil images x_c = F^H y_c and coil maps S_c (lpam.data.kspace_images.coil_volume), both cropped in image space
and scaled like the complex image x = sum_c conj(S_c) x_c (SENSE-1), which is the stored complex image and
whose magnitude is the target. Training and evaluation then use the measured coil k-space P F x_c with
A_c = P F S_c.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from lpam.data.kspace_images import coil_volume
from lpam.data.layouts.base import DatasetLayout, Subject
from lpam.data.layouts.registry import LAYOUTS, find_subjects, load_volumes
from lpam.data.prepared import SPLITS, save_prepared
from lpam.io import check_output_file
from lpam.options import check_unique
from lpam.data.mask_files import load_mask

MIN_PREPARED_SIZE = 8  # px: the smallest --size that a network can reconstruct
SCALE_PERCENTILE = 99.9  # a volume's robust maximum: its brightest 0.1% (vessels, artefacts) ignored
FOREGROUND_LEVEL = 0.05  # foreground: above this fraction of the robust maximum (scaling and slice selection)
FRACTION_TOLERANCE = 1e-6  # rounding allowed in the sum of the split fractions
REPETITIONS = ("average", "first")  # what prepare does with repeated scans of one contrast (h5)
SLICE_AXES = ("first", "last")  # --slice-axis: where the slices of a 3-D stack are (mat, npz)
PART_KEYS = ("images", "complex", "coil_images", "maps", "subjects", "slices")  # what a split collects


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
    """s = P99.9(|volume| on the foreground), the foreground being the voxels above ``FOREGROUND_LEVEL`` times
    P99.9 of the positive voxels (P99.9 alone when no voxel is above)."""
    magnitude = np.abs(volume) if np.iscomplexobj(volume) else volume
    positive = magnitude[magnitude > 0]
    if positive.size == 0:
        raise ValueError("the volume is empty (no positive voxel)")
    top = np.percentile(positive, SCALE_PERCENTILE)
    foreground = magnitude[magnitude > FOREGROUND_LEVEL * top]
    return float(np.percentile(foreground, SCALE_PERCENTILE) if foreground.size else top)


def normalise(volume: np.ndarray) -> np.ndarray:
    """volume / s with s = :func:`normalisation_scale`. Magnitudes are clipped to [0, 1]; complex images
    (measured k-space) are only scaled, so F x stays the scaled measurement."""
    scale = normalisation_scale(volume)
    if np.iscomplexobj(volume):
        return (volume / scale).astype(np.complex64)
    return np.clip(volume / scale, 0.0, 1.0).astype(np.float32)


def _normalised_coils(coil_images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x / s, x_c / s, S_c) of coil images x_c (S, Nc, H, W): the SENSE-1 image x and coil maps S_c of
    :func:`lpam.data.kspace_images.coil_volume`, s = :func:`normalisation_scale` (x)."""
    combined, maps = coil_volume(coil_images)
    scale = normalisation_scale(combined)
    return (combined / scale).astype(np.complex64), (coil_images / scale).astype(np.complex64), maps


def _normalised(subject: Subject, contrasts: Sequence[str], volumes: list[np.ndarray],
                function: Callable[[np.ndarray], Any] = normalise) -> list[Any]:
    """``function`` of each contrast's volume, an error naming the file of an empty (all-zero) one."""
    normalised = []
    for contrast, volume in zip(contrasts, volumes):
        try:
            normalised.append(function(volume))
        except ValueError as error:
            source = subject.files.get(contrast) or subject.kspace.get(contrast) or subject.name
            raise ValueError(f"{source} ({contrast} of subject {subject.name}): {error}") from error
    return normalised


def subject_splits(names: Sequence[str], fractions: tuple[float, float, float]) -> dict[str, str]:
    """Deterministic split by subject: subjects ordered by a hash of their id, then cut by ``fractions``
    (each split with a positive fraction gets at least one subject when there are enough)."""
    order = sorted(names, key=lambda name: hashlib.sha1(name.encode()).hexdigest())
    enough = len(order) >= len(SPLITS)
    counts = [int(round(f * len(order))) for f in fractions[:2]]
    counts = [max(c, 1) if f > 0 and enough else c for c, f in zip(counts, fractions)]
    train_end, val_end = counts[0], min(counts[0] + counts[1], len(order))
    if fractions[2] > 0 and val_end == len(order) and enough:
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
    if abs(sum(fractions) - 1) > FRACTION_TOLERANCE or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    if Path(out).suffix != ".npz":
        raise ValueError(f"--out must end in .npz, got {out}")
    check_output_file(out)
    if repetitions not in REPETITIONS:
        raise ValueError(f"repetitions must be 'average' or 'first', got {repetitions!r}")
    if slice_axis not in (None, *SLICE_AXES):
        raise ValueError(f"slice axis must be 'first' or 'last', got {slice_axis!r}")


def _dataset_mask(root: Path, layout: DatasetLayout, size: tuple[int, int]) -> tuple[np.ndarray | None, dict | None]:
    """The mask stored with the dataset when it is on the prepared grid (else None), and its summary
    {file, shape, rate, stored} (None without a mask); an error for a mask that is not centred."""
    mask_path = layout.mask_file(root)
    if mask_path is None:
        return None, None
    mask = load_mask(mask_path)
    if mask[0, 0] and not mask[mask.shape[0] // 2, mask.shape[1] // 2]:
        raise ValueError(f"{mask_path}: the mask samples the corner but not the centre of k-space: store it "
                         "centred (numpy.fft.fftshift)")
    summary = {"file": str(mask_path), "shape": list(mask.shape), "rate": float(mask.mean()),
               "stored": mask.shape == tuple(size)}
    return (mask if summary["stored"] else None), summary  # a k-space mask does not survive an image-space crop


def _coil_count(subject: Subject, contrasts: Sequence[str], volumes: list[np.ndarray], coils: int | None) -> int:
    """The coil count of the dataset (``coils``, or this subject's when None); an error when it differs."""
    coils = coils or volumes[0].shape[1]
    if volumes[0].shape[1] != coils:
        raise ValueError(f"{subject.files[contrasts[0]]}: {volumes[0].shape[1]} coils, the files before it "
                         f"have {coils}; --keep-coils needs one coil count for the whole dataset")
    return coils


def _subject_stacks(subject: Subject, contrasts: Sequence[str], volumes: list[np.ndarray], size: tuple[int, int],
                    keep_coils: bool) -> dict[str, np.ndarray]:
    """The normalised volumes cropped / padded to ``size``, (C, S, ...): ``stack`` (magnitudes or complex
    images), with ``keep_coils`` also ``coil_images`` and ``maps``."""
    if not keep_coils:
        return {"stack": crop_or_pad(np.stack(_normalised(subject, contrasts, volumes)), size)}
    combined, coil_images, maps = zip(*_normalised(subject, contrasts, volumes, _normalised_coils))
    return {"stack": crop_or_pad(np.stack(combined), size), "coil_images": crop_or_pad(np.stack(coil_images), size),
            "maps": crop_or_pad(np.stack(maps), size)}


def _keep_slices(part: dict[str, list], name: str, stacks: dict[str, np.ndarray], measured_kspace: bool,
                 min_foreground: float) -> None:
    """Add to ``part`` the slices of subject ``name`` whose first contrast has at least ``min_foreground``
    of its pixels above ``FOREGROUND_LEVEL``."""
    stack = stacks["stack"]
    magnitudes = np.abs(stack) if measured_kspace else stack
    foreground = (magnitudes[0] > FOREGROUND_LEVEL).mean(axis=(-2, -1))
    for z in np.flatnonzero(foreground >= min_foreground):
        part["images"].append(magnitudes[:, z])
        if measured_kspace:
            part["complex"].append(stack[:, z])
        for key in ("coil_images", "maps"):
            if key in stacks:
                part[key].append(stacks[key][:, z])
        part["subjects"].append(name)
        part["slices"].append(int(z))


def _prepared_arrays(parts: dict[str, dict[str, list]], contrasts: int, size: tuple[int, int],
                     measured_kspace: bool, coils: int | None) -> dict[str, dict[str, Any]]:
    """The splits for :func:`lpam.data.prepared.save_prepared`: the collected slices stacked (empty arrays
    for an empty split); ``coils`` (the coil count, or None) adds the coil images and maps."""
    arrays = {}
    for split, part in parts.items():
        arrays[split] = {key: part[key] for key in ("subjects", "slices")}
        for key in ("images", "complex") if measured_kspace else ("images",):
            arrays[split][key] = np.stack(part[key]) if part[key] else np.zeros((0, contrasts, *size))
        for key in ("coil_images", "maps") if coils is not None else ():
            arrays[split][key] = np.stack(part[key]) if part[key] else np.zeros((0, contrasts, coils, *size))
    return arrays


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
    if keep_coils and not LAYOUTS[data_format].keeps_coils:
        raise ValueError(f"--keep-coils needs multi-coil k-space of the h5 layout (fastMRI / M4Raw), not {data_format}")
    mask, mask_summary = _dataset_mask(Path(root), LAYOUTS[data_format], size)
    parts = {split: {key: [] for key in PART_KEYS} for split in SPLITS}
    assignment = subject_splits([s.name for s in subjects], fractions)
    coils = None
    for subject in tqdm(subjects, desc="prepare", disable=not progress, dynamic_ncols=True):
        volumes = load_volumes(subject, contrasts, data_format, measured_kspace, repetitions, slice_axis, keep_coils)
        coils = _coil_count(subject, contrasts, volumes, coils) if keep_coils else None
        stacks = _subject_stacks(subject, contrasts, volumes, size, keep_coils)
        _keep_slices(parts[assignment[subject.name]], subject.name, stacks, measured_kspace, min_foreground)
    if not any(part["slices"] for part in parts.values()):
        raise ValueError(f"no slice of {root} has a foreground fraction >= {min_foreground} at --size "
                         f"{size[0]} {size[1]}: nothing to write; lower --min-foreground or check --size")
    arrays = _prepared_arrays(parts, len(contrasts), size, measured_kspace, coils)
    save_prepared(out, arrays, list(contrasts), data_format, mask)
    return {
        "format": data_format,
        "splits": {split: {"subjects": len(set(p["subjects"])), "slices": len(p["slices"])} for split, p in parts.items()},
        "skipped": missing,
        "measured_kspace": measured_kspace,
        "coils": coils,
        "mask": mask_summary,
    }
