"""The ``bids`` layout: ``sub-*/[ses-*/]anat/*_T1w/_T2w/_FLAIR/_PDw.nii[.gz]``; sessions are separate subjects."""
from __future__ import annotations

from pathlib import Path

from lpam.data.layouts.base import Subject
from lpam.data.layouts.nifti import NIFTI, NiftiLayout, nifti_files

BIDS_SUFFIXES = {"T1": "T1w", "T2": "T2w", "FLAIR": "FLAIR", "PD": "PDw"}
ANAT_FOLDERS = ("sub-*/anat", "sub-*/ses-*/anat")  # a subject's, or a session's, anatomical images


class BidsLayout(NiftiLayout):
    """BIDS: recognised by its ``sub-*/[ses-*/]anat`` folders, whatever they hold."""

    name = "bids"
    hint = "sub-*/anat/*_T1w.nii.gz ..."
    detection_rank = 10
    contrasts = tuple(BIDS_SUFFIXES)

    def detect(self, root: Path) -> bool:
        """Whether ``root`` is a folder with ``sub-*/anat`` or ``sub-*/ses-*/anat`` folders."""
        return root.is_dir() and any(any(root.glob(pattern)) for pattern in ANAT_FOLDERS)

    def discover(self, root: Path) -> list[Subject]:
        """One subject per anat folder, named by its path (``sub-01`` or ``sub-01_ses-1``)."""
        subjects = []
        for anat in [folder for pattern in ANAT_FOLDERS for folder in sorted(root.glob(pattern))]:
            subject = Subject("_".join(part for part in anat.relative_to(root).parts[:-1]))
            for path in nifti_files(anat):
                stem = NIFTI.sub("", path.name)
                for contrast, suffix in BIDS_SUFFIXES.items():
                    if stem.endswith(f"_{suffix}"):
                        subject.files[contrast] = path
            if subject.files:
                subjects.append(subject)
        return subjects
