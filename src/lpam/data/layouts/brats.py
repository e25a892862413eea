"""The ``brats`` layout: one folder per subject with ``<id>_t1/t1ce/t2/flair.nii.gz`` (BraTS 2018-2021) or
``<id>-t1n/t1c/t2w/t2f.nii.gz`` (BraTS 2023)."""
from __future__ import annotations

from pathlib import Path

from lpam.data.layouts.base import Subject
from lpam.data.layouts.nifti import NIFTI, NiftiLayout, nifti_files

BRATS_NAMES = {"T1": ("t1", "t1n"), "T1CE": ("t1ce", "t1c"), "T2": ("t2", "t2w"), "FLAIR": ("flair", "t2f")}


class BratsLayout(NiftiLayout):
    """BraTS: a subject's files end in ``_<name>`` or ``-<name>`` for a name of :data:`BRATS_NAMES`."""

    name = "brats"
    hint = "subject folders with <id>_t1/_t2... .nii.gz"
    detection_rank = 30
    contrasts = tuple(BRATS_NAMES)

    def discover(self, root: Path) -> list[Subject]:
        """One subject per sub-folder of ``root`` holding BraTS file names."""
        subjects = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            subject = Subject(folder.name)
            for path in nifti_files(folder):
                stem = NIFTI.sub("", path.name).lower()
                for contrast, names in BRATS_NAMES.items():
                    if any(stem.endswith(f"_{n}") or stem.endswith(f"-{n}") for n in names):
                        subject.files[contrast] = path
            if subject.files:
                subjects.append(subject)
        return subjects
