"""`lpam reconstruct`: LPAM-net on a user's own data (one file per contrast).

Layouts: a 2-D array is one slice; a 3-D NIfTI volume holds slices along its last axis; a 3-D .npy / .npz /
.mat array holds slices along its first axis. ``image`` input is undersampled here (y = P F |x|) after
scaling each volume to [0, 1]; ``kspace`` input is measured, centred k-space (complex), scaled so that its
zero-filled image peaks at 1, and the result is scaled back. Everything is read, checked and computed
before the first file is written, and each file is written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import nibabel
import numpy as np
import torch

from lpam.checkpoint import load_model
from lpam.data.embedded import simulate_kspace
from lpam.data.files import read_array
from lpam.io import atomic_path, save_json
from lpam.metrics import evaluate_contrasts
from lpam.physics.masks import load_mask
from lpam.plotting import reconstruction_grid
from lpam.problem import zero_filled
from lpam.physics.masks import MaskSpec
from lpam.workflows import run_network


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def _as_slices(array: np.ndarray, path: Path) -> np.ndarray:
    """To (S, H, W): NIfTI volumes slice along the last axis, other files along the first."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        return np.moveaxis(array, -1, 0) if _is_nifti(path) else array
    raise ValueError(f"{path}: expected a 2-D slice or a 3-D volume, got shape {array.shape}")


def _save_nifti(volume: np.ndarray, affine: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        nibabel.save(nibabel.Nifti1Image(volume.astype(np.float32), affine), str(tmp))


def reconstruct_files(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    contrasts: Sequence[str] | None = None,
    input_type: str = "image",
    mask_file: str | Path | None = None,
    mask: MaskSpec | None = None,
    checkpoint: str | Path | None = None,
    mode: str = "plain",
    progress: bool = True,
    device: str = "cpu",
) -> list[Path]:
    """Reconstruct the contrasts in ``inputs``; writes <contrast>_lpam.nii.gz, <contrast>_zero_filled.nii.gz,
    preview.png (and metrics.json for image input) into ``out_dir``; returns the written paths."""
    if input_type not in ("image", "kspace"):
        raise ValueError(f"unknown input type {input_type!r}; choose image or kspace")
    paths = [Path(p) for p in inputs]
    contrasts = list(contrasts) if contrasts else ["T1", "T2", "PD", "FLAIR"][: len(paths)]
    if len(contrasts) != len(paths):
        raise ValueError(f"{len(paths)} input files but {len(contrasts)} contrast names")
    model = load_model(checkpoint, map_location=device)
    if len(paths) != model.config.contrasts:
        raise ValueError(f"the checkpoint reconstructs {model.config.contrasts} contrasts, got {len(paths)} input files")
    preferred = ("kspace", "k", "data") if input_type == "kspace" else ("image", "img", "reconstruction_rss", "data")
    arrays = [_as_slices(read_array(p, preferred), p) for p in paths]
    for path, array in zip(paths[1:], arrays[1:]):
        if array.shape != arrays[0].shape:
            raise ValueError(f"contrasts do not match: {paths[0]} has shape {arrays[0].shape}, {path} has {array.shape}")
    shape = arrays[0].shape[-2:]
    if min(shape) < 8:
        raise ValueError(f"slices of shape {shape} are too small to reconstruct")
    if mask_file is not None:
        sampling = torch.from_numpy(load_mask(mask_file, shape=tuple(shape)))
    elif input_type == "kspace":
        sampling = torch.from_numpy(np.abs(arrays[0]).sum(0) > 0)
    else:
        sampling = (mask or MaskSpec()).build(tuple(shape))
    if not sampling.any():
        raise ValueError("the mask samples no k-space point")

    stacked = np.stack(arrays, axis=1)  # (S, C, H, W)
    reference = None
    if input_type == "image":
        magnitudes = np.abs(stacked).astype(np.float32)
        scale = magnitudes.max(axis=(0, 2, 3), keepdims=True)
        if (scale == 0).any():
            raise ValueError("an input image is all zeros")
        reference = magnitudes / scale
        kspace = simulate_kspace(torch.from_numpy(reference), sampling)
    else:
        if not np.iscomplexobj(stacked):
            raise ValueError("k-space input must be complex (got real data); use --input-type image for images")
        kspace = torch.from_numpy(stacked.astype(np.complex64)) * sampling
        scale = zero_filled(kspace, sampling).abs().amax(dim=(0, 2, 3), keepdim=True).numpy()
        if (scale == 0).any():
            raise ValueError("a contrast's k-space is zero on the mask")
        kspace = kspace / torch.from_numpy(scale)
    recon = run_network(model, kspace, sampling, mode=mode, progress=progress).abs().numpy()
    baseline = zero_filled(kspace, sampling).abs().numpy()

    out = Path(out_dir)
    written = []
    affine = nibabel.load(paths[0]).affine if _is_nifti(paths[0]) else np.eye(4)
    for j, contrast in enumerate(contrasts):
        for name, images in (("lpam", recon), ("zero_filled", baseline)):
            volume = images[:, j] * scale.reshape(-1)[j]
            volume = np.moveaxis(volume, 0, -1) if _is_nifti(paths[j]) else volume
            path = out / f"{contrast}_{name}.nii.gz"
            _save_nifti(volume, affine, path)
            written.append(path)
    middle = recon.shape[0] // 2
    shown = {"zero-filled": baseline[middle], "lpam-net": recon[middle]}
    truth = reference[middle] if reference is not None else recon[middle]
    reconstruction_grid(truth, shown, contrasts, out / "preview.png",
                        title=f"slice {middle}" + ("" if reference is not None else " (no reference: errors vs LPAM-net)"))
    written.append(out / "preview.png")
    if reference is not None:
        metrics = {"methods": {"zero-filled": evaluate_contrasts(baseline, reference, contrasts),
                               "lpam-net": evaluate_contrasts(recon, reference, contrasts)},
                   "mask": {"achieved_rate": float(sampling.float().mean())},
                   "slices": list(range(recon.shape[0]))}
        save_json(metrics, out / "metrics.json")
        written.append(out / "metrics.json")
    return written
