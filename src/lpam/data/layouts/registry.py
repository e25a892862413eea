"""The registry of dataset layouts (name -> layout), from which `lpam prepare --format`, the layout detection
and the hints of error messages are derived, and the entry points that use it: :func:`detect_format`,
:func:`find_subjects` and :func:`load_volumes`."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lpam.data.layouts.base import DatasetLayout, ReadOptions, Subject
from lpam.data.layouts.bids import BidsLayout
from lpam.data.layouts.brats import BratsLayout
from lpam.data.layouts.h5 import H5Layout
from lpam.data.layouts.ismrmrd import IsmrmrdLayout
from lpam.data.layouts.ixi import IxiLayout
from lpam.data.layouts.mat import MatLayout
from lpam.data.layouts.npz import NpzLayout

LAYOUTS: dict[str, DatasetLayout] = {layout.name: layout for layout in (
    BratsLayout(),
    BidsLayout(),
    IxiLayout(),
    H5Layout(),
    IsmrmrdLayout(),
    MatLayout(),
    NpzLayout(),
)}


def detect_format(root: Path) -> str:
    """The first layout, by ``detection_rank``, that recognises ``root``: ``bids`` when sub-* folders exist,
    ``ixi`` for flat IXI file names, ``brats`` when subject folders hold BraTS file names, ``ismrmrd`` for HDF5
    files with an ISMRMRD header, ``h5`` for recognised HDF5 files, ``mat`` for T1.mat-style files, ``npz`` for
    one .npz file or .npz files holding contrast arrays."""
    for layout in sorted(LAYOUTS.values(), key=lambda layout: layout.detection_rank):
        if layout.detect(root):
            return layout.name
    raise ValueError(f"{root}: unknown dataset layout; pass --format (one of {', '.join(LAYOUTS)})")


def _check_dataset_path(root: Path, data_format: str | None) -> None:
    """``root`` is a non-empty folder, or one file that a layout reads whole (and ``data_format`` is that one)."""
    file_layouts = [name for name, layout in LAYOUTS.items() if layout.reads_file(root)] if root.is_file() else []
    if file_layouts:
        if data_format not in (None, *file_layouts):
            raise ValueError(f"{root} is one {root.suffix} file: use --format {' or '.join(file_layouts)} "
                             "or pass a dataset folder")
    elif not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    elif not any(root.iterdir()):
        raise ValueError(f"dataset folder is empty: {root}")


def _layout(data_format: str, contrasts: Sequence[str], measured_kspace: bool) -> DatasetLayout:
    """The registered layout ``data_format``, checked to hold ``contrasts`` (and k-space with ``measured_kspace``)."""
    if data_format not in LAYOUTS:
        raise ValueError(f"unknown --format {data_format!r}; choose one of {', '.join(LAYOUTS)}")
    layout = LAYOUTS[data_format]
    if measured_kspace and not layout.holds_kspace:
        with_kspace = [name for name, other in LAYOUTS.items() if other.holds_kspace]
        raise ValueError(f"--measured-kspace needs k-space, which the {data_format} layout does not hold; "
                         f"use one of {', '.join(with_kspace)}")
    unknown = [c for c in contrasts if c not in layout.contrasts]
    if unknown:
        raise ValueError(f"contrast(s) {unknown} do not exist in the {data_format} layout; "
                         f"use {', '.join(layout.contrasts)}")
    return layout


def find_subjects(root: str | Path, data_format: str | None, contrasts: Sequence[str],
                  measured_kspace: bool = False) -> tuple[list[Subject], dict[str, list[str]], str]:
    """Subjects having every requested contrast (with ``measured_kspace``, the k-space of each where a layout
    stores it beside the images: mat, npz), the others with what they miss, and the format (detected when
    ``data_format`` is None)."""
    root = Path(root)
    _check_dataset_path(root, data_format)
    data_format = data_format or detect_format(root)
    layout = _layout(data_format, contrasts, measured_kspace)
    found = layout.discover(root)
    if not found:
        raise ValueError(f"{root}: found no {data_format} dataset files; expected {layout.hint}")
    absent = [layout.missing(subject, contrasts, measured_kspace) for subject in found]
    complete = [subject for subject, lacks in zip(found, absent) if not lacks]
    if not complete:
        with_kspace = " (with k-space)" if measured_kspace and layout.kspace_beside_images else ""
        raise ValueError(f"{root}: no subject has all of {', '.join(contrasts)}{with_kspace} in the {data_format} layout")
    return complete, {subject.name: lacks for subject, lacks in zip(found, absent) if lacks}, data_format


def load_volumes(subject: Subject, contrasts: Sequence[str], data_format: str, measured: bool = False,
                 repetitions: str = "average", slice_axis: str | None = None,
                 keep_coils: bool = False) -> list[np.ndarray]:
    """One (S, H, W) volume per contrast, slices first: magnitudes (float32), or with ``measured`` complex
    images of the measured k-space, or with ``keep_coils`` (h5) coil images (S, Nc, H, W). Errors name the
    file: unreadable, wrong shape, or grids that differ."""
    options = ReadOptions(measured, repetitions, slice_axis, keep_coils)
    volumes = LAYOUTS[data_format].load_volumes(subject, contrasts, options)
    for contrast, volume in zip(contrasts[1:], volumes[1:]):
        if volume.shape != volumes[0].shape:
            raise ValueError(f"{subject.source(contrast, measured)}: grid {volume.shape} differs from "
                             f"{subject.source(contrasts[0], measured)} {volumes[0].shape}; register / resample first")
    return volumes
