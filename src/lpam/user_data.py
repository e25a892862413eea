"""`lpam reconstruct`: LPAM-net on a user's own data (one file per contrast).

Layouts: a 2-D array is one slice; a 3-D NIfTI volume or .mat array holds slices along its last axis (MATLAB
order (H, W, S)); a 3-D .npy / .npz array along its first axis; ``slice_axis`` ("first" / "last", CLI
``--slice-axis``) overrides this for every file. ``image`` input is undersampled here (y = P F |x|) after
scaling each volume to [0, 1]; ``kspace`` input is measured, centred k-space (complex), scaled so that its
zero-filled image peaks at 1, and the result is scaled back; 4-D k-space is multi-coil (S, Nc, H, W) (slices
last: (H, W, Nc, S)), reconstructed with coil maps estimated from its calibration region. ``ismrmrd`` input is
ISMRMRD raw data (:mod:`lpam.data.ismrmrd`), one file per contrast, its mask the lines present. Everything is read, checked and computed
before the first file is written, and the files appear together or not at all (:func:`lpam.io.staged_outputs`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import nibabel
import numpy as np
import torch

from lpam.checkpoint import load_model
from lpam.models.registry import model_type_of, run_description
from lpam.options import check_unique
from lpam.data.embedded import simulate_kspace
from lpam.data.files import read_array
from lpam.data.ismrmrd.contrasts import reconstruction_input
from lpam.data.measured_physics import measured_physics
from lpam.io import atomic_path, check_output_folder, save_json, staged_outputs
from lpam.metrics import evaluate_contrasts
from lpam.plotting import reconstruction_grid
from lpam.physics.mri import ContrastPhysics
from lpam.physics.operator import simulate_measurements
from lpam.physics.radial import TrajectorySpec, samples_per_pixel
from lpam.data.trajectory_files import radial_input
from lpam.data.mask_files import load_mask
from lpam.models.shipped import resolve_checkpoint
from lpam.physics.masks import MaskSpec, infer_mask_spec
from lpam.workflows import run_network


SLICE_AXES = ("first", "last")
INPUT_TYPES = ("image", "kspace", "ismrmrd")  # --input-type: images to undersample, measured k-space, ISMRMRD raw data
CONTRAST_NAMES = ("T1", "T2", "PD", "FLAIR")  # default names of the input files, in order
MIN_SIZE = 8  # px: smaller slices are refused
OUTPUT_STEMS = {"lpam-net": "lpam"}  # model type -> name in <contrast>_<name>.nii.gz (else the type itself)


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def _slice_axis(path: Path, slice_axis: str | None) -> str:
    """The axis holding the slices of a 3-D array in ``path``: ``slice_axis``, else last for NIfTI and .mat."""
    if slice_axis is not None:
        return slice_axis
    return "last" if _is_nifti(path) or path.suffix.lower() == ".mat" else "first"


def _as_slices(array: np.ndarray, path: Path, slice_axis: str | None = None) -> np.ndarray:
    """To (S, H, W), slices taken along :func:`_slice_axis`."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        return np.moveaxis(array, -1, 0) if _slice_axis(path, slice_axis) == "last" else array
    if array.ndim == 4:  # multi-coil k-space (S, Nc, H, W), or (H, W, Nc, S) with the slices last
        return np.transpose(array, (3, 2, 0, 1)) if _slice_axis(path, slice_axis) == "last" else array
    raise ValueError(f"{path}: expected a 2-D slice, a 3-D volume or 4-D multi-coil k-space, got shape {array.shape}")


def _save_nifti(volume: np.ndarray, affine: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        nibabel.save(nibabel.Nifti1Image(volume.astype(np.float32), affine), str(tmp))


def _read_inputs(paths: list[Path], input_type: str, slice_axis: str | None) -> list[np.ndarray]:
    """One (S, H, W) array per file, checked: equal shapes, large enough, complex for k-space input."""
    preferred = ("kspace", "k", "data") if input_type == "kspace" else ("image", "img", "reconstruction_rss", "data")
    arrays = [_as_slices(read_array(p, preferred), p, slice_axis) for p in paths]
    for path, array in zip(paths[1:], arrays[1:]):
        if array.shape != arrays[0].shape:
            raise ValueError(f"contrasts do not match: {paths[0]} has shape {arrays[0].shape}, {path} has {array.shape}")
    _check_size(arrays[0].shape[-2:])
    coils = [str(p) for p, a in zip(paths, arrays) if a.ndim == 4]
    if coils and input_type == "image":
        raise ValueError(f"4-D arrays are multi-coil k-space (S, Nc, H, W), got them in {', '.join(coils)}; "
                         "use --input-type kspace")
    if input_type == "kspace":
        real = [str(p) for p, a in zip(paths, arrays) if not np.iscomplexobj(a)]
        if real:
            raise ValueError(f"k-space input must be complex, got real data in {', '.join(real)}; "
                             "use --input-type image for images")
    return arrays


def _check_size(shape: tuple[int, ...]) -> None:
    if min(shape) < MIN_SIZE:
        raise ValueError(f"slices of shape {tuple(shape)} are too small to reconstruct")


def _ismrmrd_input(paths: list[Path], mask_file: str | Path | None,
                   estimate_maps: str) -> tuple[np.ndarray, ContrastPhysics, MaskSpec]:
    """K-space, physics and mask request of ISMRMRD files (:func:`lpam.data.ismrmrd.contrasts.reconstruction_input`)."""
    if mask_file is not None:
        raise ValueError("ISMRMRD input carries its own sampling (the lines or trajectory acquired): drop --mask-file")
    stacked, physics, request = reconstruction_input(paths, estimate_maps)
    _check_size(physics.shape)
    return stacked, physics, request


def _trajectory_input(paths: list[Path], input_type: str, spec: TrajectorySpec | None, mask_file: str | Path | None,
                      trajectory_file: str | Path | None, image_size: tuple[int, int] | None,
                      slice_axis: str | None) -> tuple[np.ndarray, ContrastPhysics, TrajectorySpec]:
    """Input, physics and model request on a trajectory (:func:`lpam.data.trajectory_files.radial_input`)."""
    if mask_file is not None:
        raise ValueError("--mask-file and --trajectory-file conflict: give a mask or a trajectory")
    images = np.stack(_read_inputs(paths, input_type, slice_axis), axis=1) if input_type == "image" else None
    return radial_input(paths, input_type, images, spec, trajectory_file, image_size)


def _sampling(arrays: list[np.ndarray], input_type: str, mask_file: str | Path | None,
              mask: MaskSpec | None) -> torch.Tensor:
    """The mask: from ``mask_file``, else the sampled points of k-space input, else built from ``mask``."""
    if mask_file is not None and mask is not None:
        raise ValueError("give either a mask file (--mask-file) or a mask to make (--mask ...), not both")
    shape = tuple(arrays[0].shape[-2:])
    if mask_file is not None:
        sampling = torch.from_numpy(load_mask(mask_file, shape=shape))
    elif input_type == "kspace":
        sampling = torch.from_numpy(np.abs(arrays[0]).reshape(-1, *shape).sum(0) > 0)
    else:
        sampling = (mask or MaskSpec()).build(shape)
    if not sampling.any():
        raise ValueError("the mask samples no k-space point")
    return sampling


def _network_input(stacked: np.ndarray, input_type: str,
                   physics: ContrastPhysics) -> tuple[torch.Tensor, np.ndarray, np.ndarray | None]:
    """(k-space scaled for the network, per-contrast scale, reference images in [0, 1] or None)."""
    if input_type == "image":
        magnitudes = np.abs(stacked).astype(np.float32)
        scale = magnitudes.max(axis=(0, 2, 3), keepdims=True)
        if (scale == 0).any():
            raise ValueError("an input image is all zeros")
        reference = magnitudes / scale
        if not physics.cartesian:  # y = A x on the trajectory
            return simulate_measurements(physics, torch.from_numpy(reference).to(torch.complex64)), scale, reference
        return simulate_kspace(torch.from_numpy(reference), physics.mask), scale, reference
    kspace = physics.sampled(torch.from_numpy(stacked.astype(np.complex64)))
    scale = physics.zero_filled(kspace).abs().amax(dim=(0, 2, 3), keepdim=True).numpy()
    if (scale == 0).any():
        raise ValueError("a contrast's k-space is zero on the mask")
    return kspace / torch.from_numpy(scale).reshape(1, -1, *[1] * (kspace.ndim - 2)), scale, None  # coils too


def reconstruct_files(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    contrasts: Sequence[str] | None = None,
    input_type: str = "image",
    mask_file: str | Path | None = None,
    mask: MaskSpec | TrajectorySpec | None = None,
    checkpoint: str | Path | None = None,
    mode: str = "plain",
    progress: bool = True,
    device: str = "cpu",
    slice_axis: str | None = None,
    phases: int | None = None,
    estimate_maps: str = "lowres",
    trajectory_file: str | Path | None = None,
    image_size: tuple[int, int] | None = None,
) -> tuple[list[Path], str]:
    """Reconstruct the contrasts in ``inputs``; writes <contrast>_<model>.nii.gz (model: lpam-net or unet, the
    checkpoint's type), <contrast>_zero_filled.nii.gz, preview.png (and metrics.json for image input) into
    ``out_dir``, all or none; returns the written paths and the model used (without ``checkpoint``: the shipped
    model for the mask, :func:`lpam.models.shipped.resolve_checkpoint`) with the mode and phases it ran.
    ``mask_file`` and ``mask`` exclude each other. Multi-coil k-space (4-D arrays, ISMRMRD) gets coil maps estimated by ``estimate_maps``
    (:data:`lpam.physics.coils.MAP_METHODS`) from each contrast's calibration region. A trajectory (``mask``
    a TrajectorySpec, or ``trajectory_file``) measures image input on it, or reads k-space samples on it
    (:func:`lpam.data.trajectory_files.radial_input`, on an ``image_size`` grid)."""
    if input_type not in INPUT_TYPES:
        raise ValueError(f"unknown input type {input_type!r}; choose one of {', '.join(INPUT_TYPES)}")
    if slice_axis not in (None, *SLICE_AXES):
        raise ValueError(f"slice axis must be 'first' or 'last', got {slice_axis!r}")
    check_output_folder(out_dir)
    paths = [Path(p) for p in inputs]
    contrasts = check_unique(contrasts if contrasts else CONTRAST_NAMES[: len(paths)])
    if len(contrasts) != len(paths):
        raise ValueError(f"{len(paths)} input files but {len(contrasts)} contrast names")
    stacked, physics, request, sampling = _measurements(paths, input_type, mask, mask_file, trajectory_file,
                                                        image_size, slice_axis, estimate_maps)
    checkpoint, described = resolve_checkpoint(checkpoint, request, contrasts)
    model = load_model(checkpoint, map_location=device)
    if len(paths) != model.config.contrasts:
        raise ValueError(f"the checkpoint reconstructs {model.config.contrasts} contrasts, got {len(paths)} input files")
    kspace, scale, reference = _network_input(stacked, input_type, physics)
    recon = run_network(model, kspace, physics, mode=mode, progress=progress, phases=phases).abs().numpy()
    baseline = physics.zero_filled(kspace).abs().numpy()
    label = model_type_of(model.config)
    affine = nibabel.load(paths[0]).affine if _is_nifti(paths[0]) else np.eye(4)
    names = []
    with staged_outputs(out_dir) as out:
        for j, contrast in enumerate(contrasts):
            for name, images in ((OUTPUT_STEMS.get(label, label), recon), ("zero_filled", baseline)):
                volume = images[:, j] * scale.reshape(-1)[j]
                if input_type != "ismrmrd" and _slice_axis(paths[j], slice_axis) == "last":
                    volume = np.moveaxis(volume, 0, -1)
                names.append(f"{contrast}_{name}.nii.gz")
                _save_nifti(volume, affine, out / names[-1])
        rate = sampling if sampling is None or isinstance(sampling, float) else float(sampling.float().mean())
        _write_preview_and_metrics(out, recon, baseline, reference, contrasts, label, rate)
    names += ["preview.png"] + (["metrics.json"] if reference is not None else [])
    return [Path(out_dir) / name for name in names], f"{described}; {run_description(model, mode, phases)}"


def _measurements(paths: list[Path], input_type: str, mask: MaskSpec | TrajectorySpec | None,
                  mask_file: str | Path | None, trajectory_file: str | Path | None,
                  image_size: tuple[int, int] | None, slice_axis: str | None, estimate_maps: str) -> tuple:
    """(stacked arrays, physics, the sampling a default model is chosen for, the sampling recorded in
    metrics.json) for ISMRMRD files, trajectory input or Cartesian images / k-space."""
    if input_type == "ismrmrd":
        stacked, physics, request = _ismrmrd_input(paths, mask_file, estimate_maps)
        return stacked, physics, request, None  # metrics.json, which records the sampling, needs image input
    if isinstance(mask, TrajectorySpec) or trajectory_file is not None:
        stacked, physics, request = _trajectory_input(paths, input_type, mask, mask_file, trajectory_file, image_size,
                                                      slice_axis)
        return stacked, physics, request, samples_per_pixel(physics)
    arrays = _read_inputs(paths, input_type, slice_axis)
    sampling = _sampling(arrays, input_type, mask_file, mask)
    built = mask_file is None and input_type == "image"  # else the mask came from a file or the k-space
    request = (mask or MaskSpec()) if built else infer_mask_spec(sampling)
    stacked = np.stack(arrays, axis=1)  # (S, C, H, W), or multi-coil k-space (S, C, Nc, H, W)
    return stacked, measured_physics(torch.from_numpy(stacked), sampling, estimate_maps), request, sampling


def _write_preview_and_metrics(out: Path, recon: np.ndarray, baseline: np.ndarray, reference: np.ndarray | None,
                               contrasts: list[str], label: str, achieved_rate: float | None) -> None:
    """preview.png of the middle slice and, with a reference (image input), metrics.json."""
    middle = recon.shape[0] // 2
    truth = reference[middle] if reference is not None else recon[middle]
    reconstruction_grid(truth, {"zero-filled": baseline[middle], label: recon[middle]}, contrasts, out / "preview.png",
                        title=f"slice {middle}" + ("" if reference is not None else f" (no reference: errors vs {label})"))
    if reference is not None:
        metrics = {"model": label,
                   "methods": {"zero-filled": evaluate_contrasts(baseline, reference, contrasts),
                               label: evaluate_contrasts(recon, reference, contrasts)},
                   "mask": {"achieved_rate": achieved_rate},
                   "slices": list(range(recon.shape[0]))}
        save_json(metrics, out / "metrics.json")
