"""ISMRMRD input of `lpam reconstruct --input-type ismrmrd`: one file per contrast, checked to agree, and the
physics of its measurements (Cartesian: the lines present; radial: the acquisitions' trajectory)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lpam.data.ismrmrd.header import CARTESIAN
from lpam.data.ismrmrd.reader import IsmrmrdScan, read_ismrmrd
from lpam.data.measured_physics import measured_physics, radial_measured_physics
from lpam.physics.masks import MaskSpec, infer_mask_spec
from lpam.physics.mri import ContrastPhysics


def _disagreement(first: IsmrmrdScan, other: IsmrmrdScan) -> str | None:
    """What two contrasts' files disagree on (trajectory, slices, matrix, coils, radial points), None if nothing."""
    checks = (
        ("trajectory", first.trajectory, other.trajectory),
        ("slices (idx.slice)", first.slices, other.slices),
        ("image matrix", first.shape, other.shape),
        ("coil count", first.coils, other.coils),
    )
    for what, mine, theirs in checks:
        if mine != theirs:
            return f"{what} {theirs} differs from {mine}"
    if first.points is not None and (first.points.shape != other.points.shape
                                     or not np.allclose(first.points, other.points)):
        return "radial trajectory differs from that"
    return None


def read_contrasts(paths: Sequence[str | Path]) -> list[IsmrmrdScan]:
    """One :class:`IsmrmrdScan` per contrast file; a ValueError naming both files when they disagree on the
    trajectory kind, the slices, the matrix, the coils or the radial trajectory."""
    scans = [read_ismrmrd(path) for path in paths]
    for scan in scans[1:]:
        problem = _disagreement(scans[0], scan)
        if problem is not None:
            raise ValueError(f"contrasts do not match: in {scan.path} the {problem} in {scans[0].path}")
    return scans


def _stacked(scans: Sequence[IsmrmrdScan]) -> np.ndarray:
    """The contrasts' k-space stacked on axis 1: (S, C, Nc, ...), the coil axis dropped for one coil."""
    stacked = np.stack([scan.kspace for scan in scans], axis=1)
    return stacked[:, :, 0] if scans[0].coils == 1 else stacked


def cartesian_mask(scans: Sequence[IsmrmrdScan]) -> np.ndarray:
    """The sampling mask of Cartesian contrasts: (H, W) when they share their lines, else (1, C, H, W)."""
    masks = [scan.mask for scan in scans]
    return masks[0] if all(np.array_equal(mask, masks[0]) for mask in masks[1:]) else np.stack(masks)[None]


def rasterised_rate(points: np.ndarray, shape: tuple[int, int]) -> float:
    """The sampling rate of a trajectory (2, K) in radians per pixel rasterised on the (H, W) Cartesian grid:
    the share of grid points nearest to some sample, as a radial mask's rate (chooses the shipped model)."""
    size = np.array(shape)[:, None]
    cells = np.round(points * size / (2 * math.pi)).astype(np.int64) % size  # frequency index, wrapped
    return np.unique(cells, axis=1).shape[1] / (shape[0] * shape[1])


def reconstruction_input(paths: Sequence[str | Path],
                         map_method: str = "lowres") -> tuple[np.ndarray, ContrastPhysics, MaskSpec]:
    """(k-space (S, C, [Nc,] H, W) or radial samples (S, C, [Nc,] K), their physics, the mask request that
    chooses the shipped model) of one ISMRMRD file per contrast; coil maps estimated by ``map_method``."""
    scans = read_contrasts(paths)
    stacked = _stacked(scans)
    kspace = torch.from_numpy(stacked)
    if scans[0].trajectory == CARTESIAN:
        mask = cartesian_mask(scans)
        physics = measured_physics(kspace, torch.from_numpy(mask), map_method)
        return stacked, physics, infer_mask_spec(mask if mask.ndim == 2 else mask[0, 0])
    shape = scans[0].shape
    physics = radial_measured_physics(kspace, torch.from_numpy(scans[0].points), shape, map_method)
    return stacked, physics, MaskSpec("radial", round(rasterised_rate(scans[0].points, shape), 3))
