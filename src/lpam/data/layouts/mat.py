"""The ``mat`` layout (the published LPAM code's): ``T1.mat``, ``T2.mat`` (any of T1, T1CE, T2, FLAIR, PD)
holding an image stack, optional ``K1.mat`` / ``K2.mat`` (k-space of T1 / T2; ``K_<contrast>.mat`` for
others), one folder per subject or one flat folder (one subject); an optional ``mask*.mat`` in the dataset
folder is stored in the prepared file when its shape is the prepared size (else reported). Stacks are
(H, W, S), slices last (MATLAB order)."""
from __future__ import annotations

from pathlib import Path

from lpam.data.layouts.arrays import ArrayLayout, kspace_contrast
from lpam.data.layouts.base import DATASET_CONTRASTS, Subject


class MatLayout(ArrayLayout):
    """.mat files named by contrast (images) or ``K1`` / ``K2`` / ``K_<contrast>`` (k-space)."""

    name = "mat"
    hint = "T1.mat, T2.mat (optional K1.mat, K2.mat) in one folder or one folder per subject"
    detection_rank = 50
    slice_axis = "last"

    def discover(self, root: Path) -> list[Subject]:
        """``root`` itself and each sub-folder holding contrast or k-space files is a subject."""
        subjects = []
        for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            subject = Subject(folder.name)
            for path in sorted(folder.glob("*.mat")):
                if path.stem.upper() in DATASET_CONTRASTS:
                    subject.files[path.stem.upper()] = path
                elif kspace_contrast(path.stem):
                    subject.kspace[kspace_contrast(path.stem)] = path
            if subject.files or subject.kspace:
                subjects.append(subject)
        return subjects

    def array_key(self, path: Path, contrast: str, kspace: bool) -> str:
        """The file's stem (``T1``, ``K1``...): the array read_array prefers."""
        return path.stem

    def mask_file(self, root: Path) -> Path | None:
        """The one ``mask*.mat`` file in the dataset folder (None if there is none)."""
        masks = sorted(p for p in root.glob("*.mat") if p.stem.lower().startswith("mask"))
        if len(masks) > 1:
            raise ValueError(f"{root}: several mask files ({', '.join(p.name for p in masks)}); keep one")
        return masks[0] if masks else None
