"""What every dataset layout provides (docs/method.md section 6): a name, the contrasts it may hold, how it is
recognised, how its subjects are found and how one contrast of a subject is read.

A new layout is a subclass of :class:`DatasetLayout` in its own module plus one line in
:data:`lpam.data.layouts.registry.LAYOUTS`; `lpam prepare --format`, the detection and the error hints follow.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

DATASET_CONTRASTS = ("T1", "T1CE", "T2", "FLAIR", "PD")  # the contrast names a dataset layout may hold


@dataclass
class Subject:
    """One subject (or session): one file per found contrast; for h5 every repetition of a contrast
    (``files[c]`` is the first); for mat / npz the files holding k-space per contrast."""

    name: str
    files: dict[str, Path] = field(default_factory=dict)
    repetitions: dict[str, list[Path]] = field(default_factory=dict)
    kspace: dict[str, Path] = field(default_factory=dict)

    def source(self, contrast: str, measured: bool) -> Path:
        """The file a contrast's volume is read from: its k-space file with measured k-space or when it has
        no image, else its image file."""
        from_kspace = contrast in self.kspace and (measured or contrast not in self.files)
        return self.kspace[contrast] if from_kspace else self.files[contrast]


@dataclass(frozen=True)
class ReadOptions:
    """How volumes are read: ``measured`` complex images of the measured k-space (else magnitudes),
    ``repetitions`` ("average" / "first", h5), ``slice_axis`` of 3-D stacks ("first" / "last", None: the
    layout's own; mat / npz) and ``keep_coils`` (coil images of multi-coil k-space, h5)."""

    measured: bool = False
    repetitions: str = "average"
    slice_axis: str | None = None
    keep_coils: bool = False


class DatasetLayout(ABC):
    """A dataset layout: class attributes describe it, :meth:`discover` finds its subjects and
    :meth:`load_volume` reads one contrast of one subject as (S, H, W), slices first."""

    name: str  # the --format name
    hint: str  # one line: what the layout's files look like (error messages, --help)
    detection_rank: int  # detect_format tries the layouts in increasing rank (the most specific first)
    contrasts: tuple[str, ...] = DATASET_CONTRASTS  # the contrasts the layout can hold
    holds_kspace = False  # holds measured k-space (--measured-kspace)
    kspace_beside_images = False  # k-space stored per contrast beside the images (with measured k-space, needed)
    keeps_coils = False  # holds multi-coil k-space that --keep-coils can keep per coil

    def reads_file(self, path: Path) -> bool:
        """Whether ``path``, one file, is a whole dataset of this layout."""
        return False

    def detect(self, root: Path) -> bool:
        """Whether ``root`` (a folder, or one file) holds this layout."""
        return self.reads_file(root) if root.is_file() else bool(self.discover(root))

    @abstractmethod
    def discover(self, root: Path) -> list[Subject]:
        """The subjects found below ``root`` with the files of each contrast they have."""

    @abstractmethod
    def load_volume(self, subject: Subject, contrast: str, options: ReadOptions) -> np.ndarray:
        """One contrast of ``subject`` as (S, H, W), slices first: float32 magnitudes, complex64 images of the
        measured k-space (``options.measured``) or coil images (S, Nc, H, W) (``options.keep_coils``)."""

    def load_volumes(self, subject: Subject, contrasts: Sequence[str], options: ReadOptions) -> list[np.ndarray]:
        """:meth:`load_volume` of each contrast (a layout that resamples contrasts onto one grid overrides it)."""
        return [self.load_volume(subject, contrast, options) for contrast in contrasts]

    def missing(self, subject: Subject, contrasts: Sequence[str], measured: bool) -> list[str]:
        """What ``subject`` lacks of ``contrasts``: the contrasts with neither image nor k-space, or with
        ``measured`` k-space stored beside the images, the contrasts without k-space."""
        if measured and self.kspace_beside_images:
            return [f"{c} k-space" for c in contrasts if c not in subject.kspace]
        return [c for c in contrasts if c not in subject.files and c not in subject.kspace]

    def mask_file(self, root: Path) -> Path | None:
        """A sampling mask stored with the dataset (None: the layout has none)."""
        return None
