"""`lpam evaluate`: one model (default: the shipped LPAM-net) and zero-filled on any data, with the metrics.json
schema of `lpam solve` and `lpam demo`.

With ``coils`` the k-space is simulated from that many coils (:func:`lpam.physics.coils.simulate_coil_maps`) and
the model (data terms summed over the coils) is compared with zero-filled combined by RSS and by the maps; the
maps given to the reconstructions are the simulated ones, or estimated with the method ``estimate_maps``. A
dataset prepared with ``--keep-coils`` is evaluated, without ``coils``, on its measured coil k-space P F x_c
with its stored maps (or maps estimated with ``estimate_maps``)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from lpam.checkpoint import checkpoint_contrasts, load_model_with_checkpoint
from lpam.data.mask_files import load_mask
from lpam.data.sources import EvaluationData, load_evaluation_data
from lpam.evaluation.scoring import (evaluate_method, evaluation_batch, multicoil_reconstructors,
                                     network_reconstructor, summary, zero_filled)
from lpam.io import check_output_folder, save_json, staged_outputs
from lpam.models.lpam_net import count_parameters
from lpam.models.registry import run_phases
from lpam.physics.coils import calibration_size, resolved_map_method
from lpam.models.shipped import resolve_checkpoint
from lpam.physics.masks import MaskSpec, infer_mask_spec
from lpam.physics.radial import TrajectorySpec
from lpam.plotting import reconstruction_grid


def trained_contrasts(checkpoint: dict) -> list[str]:
    """The contrasts a checkpoint was trained on (T1, T2 when it does not say)."""
    return checkpoint_contrasts(checkpoint) or ["T1", "T2"]


def _sampling(mask: MaskSpec | TrajectorySpec | None, mask_file: str | Path | None,
              shape: tuple[int, int]) -> tuple[torch.Tensor | TrajectorySpec, dict, str]:
    """(mask or trajectory, its description for metrics.json with the achieved rate (a trajectory's: samples
    per grid point K / (H W)), its label for the figure) from a file or a request."""
    if isinstance(mask, TrajectorySpec):
        samples = mask.trajectory(shape).shape[1]
        return mask, {**mask.describe(), "samples": samples, "achieved_rate": samples / (shape[0] * shape[1])}, \
            mask.label()
    if mask_file is not None:
        sampling, described, label = torch.from_numpy(load_mask(mask_file, shape=shape)), \
            {"kind": "file", "file": str(mask_file)}, Path(mask_file).name
    else:
        mask = mask or MaskSpec()
        sampling, described, label = mask.build(shape), mask.describe(), mask.label()
    return sampling, {**described, "achieved_rate": float(sampling.float().mean())}, label


def _coils_note(coils: int | None, dataset: EvaluationData, estimate_maps: str | None,
                sampling: torch.Tensor) -> dict:
    """metrics.json's "coils": the count and where the maps came from."""
    measured = coils is None
    stored = "measured k-space, maps estimated by lpam prepare"
    maps = (stored if measured else "simulated") if estimate_maps is None else \
        f"estimated ({estimate_maps}) from the calibration region {'x'.join(map(str, calibration_size(sampling)))}"
    return {"count": coils or dataset.coil_images.shape[2], "maps": maps}


def _dataset_for(model: torch.nn.Module, payload: dict, data: str, split: str,
                 slices: slice | Sequence[int] | None, contrasts: Sequence[str] | None) -> EvaluationData:
    """The data to evaluate on, with ``contrasts`` (default: those the checkpoint was trained on)."""
    contrasts = list(contrasts or trained_contrasts(payload))
    if len(contrasts) != model.config.contrasts:
        raise ValueError(f"the model reconstructs {model.config.contrasts} contrasts, --contrasts lists {contrasts}")
    return load_evaluation_data(data, split, slices, contrasts)


def _check_map_estimate(estimate_maps: str | None, mask: MaskSpec | TrajectorySpec | None, coils: int | None,
                        measured_coils: bool) -> None:
    """Coil maps are estimated from multi-coil Cartesian k-space only."""
    if estimate_maps is not None and isinstance(mask, TrajectorySpec):
        raise ValueError("--estimate-maps works on Cartesian k-space; on a trajectory the simulated maps are used")
    if estimate_maps is not None and coils is None and not measured_coils:
        raise ValueError("estimating coil maps needs multi-coil k-space: give the number of coils too, or a "
                         "dataset prepared with --keep-coils")


def evaluate_checkpoint(
    checkpoint: str | Path | None,
    out_dir: str | Path,
    data: str = "embedded",
    split: str = "test",
    slices: slice | Sequence[int] | None = None,
    mask: MaskSpec | TrajectorySpec | None = None,
    mode: str = "plain",
    name: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    mask_file: str | Path | None = None,
    coils: int | None = None,
    estimate_maps: str | None = None,
    contrasts: Sequence[str] | None = None,
    phases: int | None = None,
) -> dict:
    """`lpam evaluate`: writes metrics.json and figure.png into ``out_dir`` (module docstring: coils, maps).
    ``mask_file`` (.npy / .npz / .mat, or a prepared dataset holding its ``mask``) replaces ``mask``."""
    check_output_folder(out_dir)
    if mask is not None and mask_file is not None:
        raise ValueError("give either a mask file (--mask-file) or a mask to make (--mask ...), not both")
    if estimate_maps is not None:
        estimate_maps = resolved_map_method(estimate_maps)
    name = name or (Path(checkpoint).stem if checkpoint is not None else "lpam-net")
    request = mask or (infer_mask_spec(load_mask(mask_file)) if mask_file is not None else MaskSpec())
    checkpoint, described = resolve_checkpoint(checkpoint, request, contrasts or ("T1", "T2"), coils)
    model, payload = load_model_with_checkpoint(checkpoint, map_location=device)
    dataset = _dataset_for(model, payload, data, split, slices, contrasts)
    measured_coils = coils is None and dataset.coil_images is not None
    _check_map_estimate(estimate_maps, mask, coils, measured_coils)
    sampling, mask_described, label = _sampling(mask, mask_file, tuple(dataset.images.shape[-2:]))
    positions = list(range(dataset.images.shape[0]))
    show = positions[len(positions) // 2]
    if coils is None and not measured_coils:
        reconstructors = {"zero-filled": zero_filled, name: network_reconstructor(model, mode, progress=progress,
                                                                                  phases=phases)}
    else:
        reconstructors = multicoil_reconstructors(model, name, mode, estimate_maps, progress, phases)
    batch = evaluation_batch(dataset, sampling, positions, coils, measured_coils)
    results = {method: evaluate_method(reconstruct, batch, positions, dataset.contrasts, show)
               for method, reconstruct in reconstructors.items()}
    metrics = {
        "methods": {method: summary(result, dataset.contrasts) for method, result in results.items()},
        "mask": mask_described, "slices": dataset.slice_ids,
        "data": dataset.source, "mode": mode, "phases": run_phases(model, mode, phases),
        "checkpoint": described,
        "params": {name: count_parameters(model)},
        "seconds_per_pair": {method: r.seconds / len(positions) for method, r in results.items()},
    }
    if coils is not None or measured_coils:
        metrics["coils"] = _coils_note(coils, dataset, estimate_maps, sampling)
    with staged_outputs(out_dir) as out:
        save_json(metrics, out / "metrics.json")
        reconstruction_grid(dataset.images[show].abs().numpy(), {m: r.shown for m, r in results.items()},
                            dataset.contrasts, out / "figure.png",
                            title=f"{dataset.source}, slice {dataset.slice_ids[show]}, {label}")
    return metrics
