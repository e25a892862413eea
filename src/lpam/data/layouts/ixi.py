"""The ``ixi`` layout: flat ``IXI<nnn>-<site>-<nnnn>-<T1|T2|PD>.nii.gz``, paired by the subject prefix; the
contrasts are resampled (trilinear, nibabel.processing) onto the T2 grid (the first contrast's without T2)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from lpam.data.layouts.base import ReadOptions, Subject
from lpam.data.layouts.nifti import NiftiLayout, nifti_files, read_volume

IXI_CONTRASTS = ("T1", "T2", "PD")
IXI_FILE = re.compile(r"^(IXI\d+-[A-Za-z]+-\d+)-(T1|T2|PD)\.nii(\.gz)?$")
GRID_CONTRAST = "T2"  # T2 and PD share a grid; the other contrasts are resampled onto it


class IxiLayout(NiftiLayout):
    """IXI: one flat folder; each subject's contrasts are resampled onto one grid."""

    name = "ixi"
    hint = "IXI<id>-<site>-<nnnn>-T1/T2/PD.nii.gz"
    detection_rank = 20
    contrasts = IXI_CONTRASTS

    def discover(self, root: Path) -> list[Subject]:
        """The subjects of the IXI file names directly in ``root``, sorted by name."""
        subjects: dict[str, Subject] = {}
        for path in nifti_files(root):
            match = IXI_FILE.match(path.name)
            if match:
                subjects.setdefault(match.group(1), Subject(match.group(1))).files[match.group(2)] = path
        return [subjects[name] for name in sorted(subjects)]

    def load_volumes(self, subject: Subject, contrasts: Sequence[str], options: ReadOptions) -> list[np.ndarray]:
        """The contrasts' volumes on the grid of ``GRID_CONTRAST`` when it is among ``contrasts``, else on the
        first contrast's grid."""
        onto = subject.files[GRID_CONTRAST if GRID_CONTRAST in contrasts else contrasts[0]]
        return [read_volume(subject.files[contrast], onto=onto) for contrast in contrasts]
