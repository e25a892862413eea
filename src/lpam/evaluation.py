"""`lpam evaluate` and `lpam benchmark`: every method on identical data, masks and metric code.

Methods (docs/method.md sections 3, 4, 7): zero-filled; joint / separate TV (classical LPAM, weight tuned on
the validation slab); the learned models from their shipped checkpoints: lpam-net (joint, plain),
lpam-net-convergent (the same weights in convergent mode), lpam-net-separate (one CNN per contrast) and
unet-joint (residual U-Net with data consistency). metrics.json: methods -> name -> mask label ->
contrast -> metric {mean, std}, plus params and seconds_per_pair per method.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from lpam.algorithm.lpam import History
from lpam.checkpoint import WEIGHTS_DIR, load_checkpoint, load_model_with_checkpoint
from lpam.data.embedded import simulate_kspace
from lpam.data.prepared import is_prepared
from lpam.data.sources import EvaluationData, load_evaluation_data
from lpam.device import resolve_device
from lpam.io import atomic_path, check_output_folder, save_json, staged_outputs
from lpam.options import check_unique
from lpam.metrics import slice_metrics, summarize
from lpam.methods import BENCHMARK_MASKS, CLASSICAL, LEARNED, METHODS, PRIMARY_MASK, methods_for
from lpam.models.lpam_net import count_parameters
from lpam.physics.coils import (calibration_size, estimate_coil_maps, mask_per_coil, resolved_map_method,
                                simulate_coil_maps)
from lpam.physics.masks import MaskSpec, load_mask
from lpam.plotting import convergence_plot, psnr_curves, reconstruction_grid
from lpam.physics.mri import MRIPhysics
from lpam.reconstruction import TVSettings, reconstruct_tv
from lpam.workflows import branch_counts, history_json, run_network

WEIGHTS = WEIGHTS_DIR


Reconstructor = Callable[[torch.Tensor, MRIPhysics], torch.Tensor]  # (measurements, physics) -> images
Simulator = Callable[[torch.Tensor, MRIPhysics], torch.Tensor]  # (images, physics) -> measurements


def simulate(images: torch.Tensor, physics: MRIPhysics) -> torch.Tensor:
    """Noise-free measurements A x of the images (complex64)."""
    return physics.forward(images.to(torch.complex64))


def zero_filled(kspace: torch.Tensor, physics: MRIPhysics) -> torch.Tensor:
    """A^H y: the zero-filled (with coils: SENSE-combined) images."""
    return physics.adjoint(kspace)


@dataclass
class MethodResult:
    """Per-slice metrics {position: {contrast: metrics}}, seconds, and what is kept for figures."""

    per_slice: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: float = 0.0
    history: History | None = None
    shown: np.ndarray | None = None


def evaluate_method(reconstruct: Reconstructor, data: EvaluationData, physics: MRIPhysics,
                    positions: Sequence[int], show: int | None = None,
                    simulate: Simulator = simulate) -> MethodResult:
    """Reconstruct the slices at ``positions`` from their measurements y = A x and score every slice against
    |x| (x complex for measured k-space: then y is the measurement, nothing simulated; docs/method.md
    section 7)."""
    images = data.images[list(positions)]
    kspace = simulate(images, physics)
    started = time.perf_counter()
    recon = reconstruct(kspace, physics)
    result = MethodResult(seconds=time.perf_counter() - started)
    magnitudes, truth = recon.abs().numpy(), images.abs().numpy()
    for row, position in enumerate(positions):
        result.per_slice[position] = {c: slice_metrics(magnitudes[row, j], truth[row, j])
                                      for j, c in enumerate(data.contrasts)}
        if position == show:
            result.shown = recon[row].numpy()
    return result


def summary(result: MethodResult, contrasts: Sequence[str], positions: Sequence[int] | None = None) -> dict:
    """{contrast: {metric: {mean, std}}} over ``positions`` (default: all evaluated slices)."""
    chosen = list(result.per_slice) if positions is None else [p for p in positions if p in result.per_slice]
    return {c: summarize([result.per_slice[p][c] for p in chosen]) for c in contrasts}


def network_reconstructor(model: torch.nn.Module, mode: str, history: History | None = None,
                          progress: bool = False, phases: int | None = None) -> Reconstructor:
    return lambda kspace, physics: run_network(model, kspace, physics, mode, history, progress, phases=phases)


def multicoil_reconstructors(model: torch.nn.Module, name: str, mode: str, estimate_maps: str | None = None,
                             progress: bool = False, phases: int | None = None) -> dict[str, Reconstructor]:
    """The methods of `lpam evaluate --coils`: zero-filled coil-combined by root sum of squares and by the
    maps (SENSE, A^H y), and the model with A_c = P F S_c. The maps are the physics' (simulated or stored)
    ones, or, when ``estimate_maps`` names a method of :func:`estimate_coil_maps`, estimated from the
    calibration region of each slice's sampled k-space (per contrast)."""

    def physics_for(kspace: torch.Tensor, physics: MRIPhysics) -> MRIPhysics:
        if estimate_maps is None:
            return physics
        return MRIPhysics(physics.mask, physics.contrasts, estimate_coil_maps(kspace, physics.mask, estimate_maps))

    return {
        "zero-filled-rss": lambda kspace, physics: physics.root_sum_of_squares(kspace),
        "zero-filled-sense": lambda kspace, physics: zero_filled(kspace, physics_for(kspace, physics)),
        name: lambda kspace, physics: run_network(model, kspace, physics_for(kspace, physics), mode,
                                                  progress=progress, phases=phases),
    }


def tv_reconstructor(coupling: str, iterations: int, progress: bool = False) -> Reconstructor:
    settings = TVSettings(coupling=coupling, iterations=iterations)
    return lambda kspace, physics: reconstruct_tv(kspace, physics, settings, progress)[0]


def _trained_contrasts(checkpoint: dict) -> list[str]:
    """The contrasts a checkpoint was trained on (T1, T2 when it does not say)."""
    return list((checkpoint.get("train_config") or {}).get("data", {}).get("contrasts") or ["T1", "T2"])


def _model_mask(checkpoint: dict) -> str | None:
    """The mask label a checkpoint was trained with (None if it does not say)."""
    mask = (checkpoint.get("train_config") or {}).get("data", {}).get("mask")
    if not mask:
        return None
    return MaskSpec(mask["kind"], mask.get("rate"), mask.get("acceleration"), mask.get("center_fraction")).label()


def evaluate_checkpoint(
    checkpoint: str | Path | None,
    out_dir: str | Path,
    data: str = "embedded",
    split: str = "test",
    slices: slice | Sequence[int] | None = None,
    mask: MaskSpec | None = None,
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
    """`lpam evaluate`: one model (default: the shipped LPAM-net) and zero-filled on any data; writes
    metrics.json (the schema of `lpam solve` / `lpam demo`) and figure.png into ``out_dir``. ``mask_file``
    (.npy / .npz / .mat, or a prepared dataset holding its ``mask``) replaces the ``mask`` request.

    ``coils``: simulate k-space from ``coils`` coils with :func:`simulate_coil_maps` and compare the model
    (data terms summed over coils) with zero-filled combined by RSS and by the maps; the maps given to the
    reconstructions are the simulated ones, or estimated with the method ``estimate_maps``. A dataset
    prepared with ``--keep-coils`` is evaluated, without ``coils``, on its measured coil k-space P F x_c with
    its stored maps (or maps estimated with ``estimate_maps``)."""
    check_output_folder(out_dir)
    if mask is not None and mask_file is not None:
        raise ValueError("give either a mask file (--mask-file) or a mask to make (--mask ...), not both")
    if estimate_maps is not None:
        estimate_maps = resolved_map_method(estimate_maps)
    mask = mask or MaskSpec()
    model, payload = load_model_with_checkpoint(checkpoint, map_location=device)
    contrasts = list(contrasts or _trained_contrasts(payload))
    if len(contrasts) != model.config.contrasts:
        raise ValueError(f"the model reconstructs {model.config.contrasts} contrasts, --contrasts lists {contrasts}")
    dataset = load_evaluation_data(data, split, slices, contrasts)
    measured_coils = coils is None and dataset.coil_images is not None
    if estimate_maps is not None and coils is None and not measured_coils:
        raise ValueError("estimating coil maps needs multi-coil k-space: give the number of coils too, or a "
                         "dataset prepared with --keep-coils")
    name = name or (Path(checkpoint).stem if checkpoint is not None else "lpam-net")
    shape = tuple(dataset.images.shape[-2:])
    if mask_file is not None:
        sampling = torch.from_numpy(load_mask(mask_file, shape=shape))
        described, label = {"kind": "file", "file": str(mask_file)}, Path(mask_file).name
    else:
        sampling, described, label = mask.build(shape), mask.describe(), mask.label()
    positions = list(range(dataset.images.shape[0]))
    show = positions[len(positions) // 2]
    if measured_coils:
        def measured_coil_kspace(images: torch.Tensor, physics: MRIPhysics) -> torch.Tensor:
            """P F x_c of the measured coil images; every slice is evaluated at once, so they are those of
            ``images`` (their SENSE combinations)."""
            return simulate_kspace(dataset.coil_images, mask_per_coil(physics.mask))

        physics, simulator = MRIPhysics(sampling, len(contrasts), dataset.maps), measured_coil_kspace
        reconstructors = multicoil_reconstructors(model, name, mode, estimate_maps, progress, phases)
    elif coils is None:
        physics, simulator = MRIPhysics(sampling, len(contrasts)), simulate
        reconstructors = {"zero-filled": zero_filled,
                          name: network_reconstructor(model, mode, progress=progress, phases=phases)}
    else:
        physics, simulator = MRIPhysics(sampling, len(contrasts), simulate_coil_maps(coils, shape)), simulate
        reconstructors = multicoil_reconstructors(model, name, mode, estimate_maps, progress, phases)
    results = {method: evaluate_method(reconstruct, dataset, physics, positions, show, simulator)
               for method, reconstruct in reconstructors.items()}
    metrics = {
        "methods": {method: summary(result, dataset.contrasts) for method, result in results.items()},
        "mask": {**described, "achieved_rate": float(sampling.float().mean())},
        "slices": dataset.slice_ids,
        "data": dataset.source,
        "mode": mode,
        "phases": phases or getattr(model.config, "phases", 1),
        "checkpoint": str(checkpoint) if checkpoint is not None else "shipped",
        "params": {name: count_parameters(model)},
        "seconds_per_pair": {method: r.seconds / len(positions) for method, r in results.items()},
    }
    if coils is not None or measured_coils:
        stored = "measured k-space, maps estimated by lpam prepare"
        metrics["coils"] = {"count": coils or dataset.coil_images.shape[2],
                            "maps": (stored if measured_coils else "simulated") if estimate_maps is None else
                            f"estimated ({estimate_maps}) from the calibration region "
                            f"{'x'.join(map(str, calibration_size(sampling)))}"}
    with staged_outputs(out_dir) as out:
        save_json(metrics, out / "metrics.json")
        reconstruction_grid(dataset.images[show].abs().numpy(), {m: r.shown for m, r in results.items()},
                            dataset.contrasts, out / "figure.png",
                            title=f"{dataset.source}, slice {dataset.slice_ids[show]}, {label}")
    return metrics


def _machine() -> str:
    cores = len(os.sched_getaffinity(0))
    return f"{platform.machine()} {platform.processor() or platform.platform()}, {cores} cores, torch {torch.__version__}"


def results_markdown(metrics: dict, contrasts: Sequence[str], notes: Sequence[str]) -> str:
    """results.md: one table per mask, best value per metric column in bold, notes below."""
    lines = ["# lpam benchmark", ""]
    lines += [f"- {note}" for note in notes]
    for mask in metrics["masks"]:
        lines += ["", f"## {mask} (achieved rate {metrics['masks'][mask]['achieved_rate']:.3f})", ""]
        header = "| method | params | " + " | ".join(f"{c} PSNR | {c} SSIM" for c in contrasts) + " | s / pair |"
        lines += [header, "|" + "---|" * (3 + 2 * len(contrasts))]
        rows = {}
        for method, per_mask in metrics["methods"].items():
            if mask in per_mask:
                rows[method] = [per_mask[mask][c][k]["mean"] for c in contrasts for k in ("psnr", "ssim")]
        best = [max(values[column] for values in rows.values()) for column in range(2 * len(contrasts))]
        for method, values in rows.items():
            cells = []
            for column, value in enumerate(values):
                std = metrics["methods"][method][mask][contrasts[column // 2]]["psnr" if column % 2 == 0 else "ssim"]["std"]
                text = f"{value:.2f} ± {std:.2f}" if column % 2 == 0 else f"{value:.4f} ± {std:.3f}"
                cells.append(f"**{text}**" if value == best[column] else text)
            marker = " †" if mask in metrics["off_mask"].get(method, []) else ""
            subset = " ‡" if metrics["evaluated_on"][method][mask] == "subset" else ""
            seconds = metrics["seconds_per_pair"][method][mask]
            lines.append(f"| {method}{marker}{subset} | {metrics['params'][method]:,} | " + " | ".join(cells)
                         + f" | {seconds:.2f} |")
    return "\n".join(lines) + "\n"


def run_benchmark(
    out_dir: str | Path,
    masks: Sequence[str] = tuple(BENCHMARK_MASKS),
    methods: Sequence[str] | None = None,
    slices: slice | Sequence[int] | None = None,
    subset_every: int = 5,
    tv_iterations: int = 300,
    checkpoints: dict[tuple[str, str], str | Path] | None = None,
    device: str = "cpu",
    progress: bool = True,
    data: str = "embedded",
    split: str = "test",
    contrasts: Sequence[str] = ("T1", "T2"),
) -> dict:
    """`lpam benchmark`: every method (default: those for ``contrasts``, :func:`lpam.methods.methods_for`)
    for each mask on ``data`` (the embedded slabs, a prepared dataset or an image file, as
    :func:`lpam.data.sources.load_evaluation_data`; ``split`` of the first two). The primary mask (radial
    20%) runs on all selected slices; the other masks and the (10x slower) convergent net run on every
    ``subset_every``-th of them (docs/method.md section 7). ``checkpoints`` maps (method, mask
    label) to a checkpoint that replaces the shipped weights (see :func:`retrain`)."""
    methods = methods_for(contrasts) if methods is None else tuple(methods)
    unknown = [m for m in masks if m not in BENCHMARK_MASKS] + [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown mask(s) or method(s) {unknown}; masks: {', '.join(BENCHMARK_MASKS)}; "
                         f"methods: {', '.join(METHODS)}")
    mismatched = [m for m in methods if m in LEARNED and LEARNED[m].contrasts != tuple(contrasts)]
    if mismatched:
        raise ValueError(f"method(s) {mismatched} reconstruct other contrasts than {', '.join(contrasts)}; "
                         f"for these contrasts use {', '.join(methods_for(contrasts))}")
    if subset_every < 1:
        raise ValueError(f"subset_every must be >= 1, got {subset_every}")
    if tv_iterations < 1:
        raise ValueError(f"tv_iterations must be >= 1, got {tv_iterations}")
    check_unique(masks, "--masks")
    check_unique(methods, "--methods")
    check_output_folder(out_dir)
    resolve_device(device)  # also when only classical methods (CPU) run: an unavailable device is an error
    started_all = time.perf_counter()
    dataset = load_evaluation_data(data, split, slices, contrasts)
    full = list(range(dataset.images.shape[0]))
    subset = full[::subset_every]
    show = subset[len(subset) // 2]
    params, trained_on, loaded = {m: 0 for m in CLASSICAL}, {}, {}

    def model_for(method: str, mask_label: str) -> torch.nn.Module:
        path = Path((checkpoints or {}).get((method, mask_label)) or WEIGHTS / LEARNED[method].weights)
        if path not in loaded:  # each checkpoint is read once: the model and the mask it was trained on
            model, payload = load_model_with_checkpoint(path, map_location=device)
            loaded[path] = (model, _model_mask(payload))
        model, trained_mask = loaded[path]
        params[method] = count_parameters(model)
        trained_on.setdefault(method, {})[mask_label] = trained_mask
        return model

    results: dict[str, dict[str, MethodResult]] = {m: {} for m in methods}
    achieved = {}
    jobs = [(mask, method) for mask in masks for method in methods]
    bar = tqdm(jobs, desc="benchmark", disable=not progress, dynamic_ncols=True)
    for mask_label, method in bar:
        bar.set_postfix(mask=mask_label, method=method)
        sampling = BENCHMARK_MASKS[mask_label].build(tuple(dataset.images.shape[-2:]))
        achieved[mask_label] = float(sampling.float().mean())
        positions = full if mask_label == PRIMARY_MASK else subset
        if method == "zero-filled":
            reconstruct = zero_filled
        elif method in ("joint-tv", "separate-tv"):
            reconstruct = tv_reconstructor(method.split("-")[0], tv_iterations)
        else:
            history = History() if LEARNED[method].mode == "convergent" else None
            reconstruct = network_reconstructor(model_for(method, mask_label), LEARNED[method].mode, history)
        physics = MRIPhysics(sampling, len(dataset.contrasts))
        results[method][mask_label] = evaluate_method(reconstruct, dataset, physics, positions, show)
        if method in LEARNED and LEARNED[method].mode == "convergent":
            results[method][mask_label].history = history
    bar.close()
    metrics = {
        "methods": {m: {k: summary(r, dataset.contrasts) for k, r in per.items()} for m, per in results.items()},
        "subset_methods": {m: {k: summary(r, dataset.contrasts, subset) for k, r in per.items()} for m, per in results.items()},
        "params": params,
        "seconds_per_pair": {m: {k: r.seconds / len(r.per_slice) for k, r in per.items()} for m, per in results.items()},
        "masks": {k: {**BENCHMARK_MASKS[k].describe(), "achieved_rate": achieved[k]} for k in masks},
        "slices": {"all": [dataset.slice_ids[p] for p in full], "subset": [dataset.slice_ids[p] for p in subset]},
        "evaluated_on": {m: {k: "all" if len(r.per_slice) == len(full) else "subset" for k, r in per.items()}
                         for m, per in results.items()},
        "trained_on": trained_on,
        "off_mask": {m: [k for k, t in per.items() if t != k] for m, per in trained_on.items()},
        "convergent_branches": {k: branch_counts(r.history) for k, r in results.get("lpam-net-convergent", {}).items()},
        "machine": _machine(),
    }
    metrics["seconds_total"] = round(time.perf_counter() - started_all, 1)
    notes = [
        f"Data {dataset.source}"
        + (" (the embedded ICBM slab)" if dataset.source.startswith("embedded") else "")
        + (", measured k-space" if dataset.measured else ", k-space simulated from the magnitudes")
        + f"; {PRIMARY_MASK} on all {len(full)} slices ({dataset.slice_ids[0]}-{dataset.slice_ids[-1]}); the other masks "
        f"on the fixed subset of every {subset_every}th slice "
        f"({', '.join(str(dataset.slice_ids[p]) for p in subset)}) to stay within time.",
        "† a learned model applied to a mask it was not trained on (the shipped models are trained on radial 20%; "
        "`lpam benchmark --retrain` trains one per mask).",
        f"TV: {tv_iterations} LPAM iterations, lam {TVSettings.lam} chosen on the validation slab at radial 20%.",
        "PSNR (data range 1) and SSIM (scikit-image, 7x7 uniform window) on magnitudes, mean ± std over slices.",
        f"Machine: {metrics['machine']}; whole run {metrics['seconds_total']:.0f} s.",
    ]
    with staged_outputs(out_dir) as staging:
        _write_benchmark(staging, metrics, results, dataset, notes, masks, methods, subset, show)
    return metrics


def _write_benchmark(out: Path, metrics: dict, results: dict[str, dict[str, MethodResult]], dataset: EvaluationData,
                     notes: list[str], masks: Sequence[str], methods: Sequence[str], subset: list[int],
                     show: int) -> None:
    """results.md, metrics.json and the figures of `lpam benchmark` into ``out``."""
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(results_markdown(metrics, dataset.contrasts, notes))
    save_json(metrics, out / "metrics.json")
    for mask_label in masks:
        shown = {m: results[m][mask_label].shown for m in methods if m != "lpam-net-convergent"}
        reconstruction_grid(dataset.images[show].abs().numpy(), shown, dataset.contrasts, out / f"grid_{mask_label}.png",
                            title=f"{dataset.source} slice {dataset.slice_ids[show]}, {mask_label}")
    psnr_curves(metrics["subset_methods"], metrics["masks"], dataset.contrasts, out / "psnr_vs_rate.png",
                title=f"PSNR vs sampling rate ({dataset.source} subset, {len(subset)} slices)")
    for mask_label, result in results.get("lpam-net-convergent", {}).items():
        positions = list(result.per_slice)  # the slices it ran on, in order
        if mask_label == PRIMARY_MASK or PRIMARY_MASK not in masks:
            convergence_plot(result.history.per_sample(0), out / "convergent_phases.png", xlabel="phase",
                             title=f"lpam-net convergent mode, {mask_label}, slice {dataset.slice_ids[positions[0]]}")
            save_json(history_json(result.history, [dataset.slice_ids[p] for p in positions]), out / "history_convergent.json")
            break


def retrain(out_dir: str | Path, masks: Sequence[str], methods: Sequence[str], steps_per_epoch: int | None = None,
            device: str = "cpu", progress: bool = True, data: str = "embedded") -> dict[tuple[str, str], Path]:
    """Train every learned method per mask with the config stored in its shipped checkpoint (the committed
    configs/*.yaml), the mask replaced, and the data replaced by ``data`` when it is a prepared dataset
    (its train / val splits); runs go to ``out_dir/runs/<method>-<mask>`` and resume if present.
    lpam-net-convergent uses lpam-net's weights. Returns (method, mask) -> best checkpoint."""
    from lpam.training.config import MaskConfig, TrainConfig
    from lpam.training.trainer import train

    resolve_device(device)

    trained: dict[tuple[str, str], Path] = {}
    runs: dict[tuple[str, str], Path] = {}
    for method in methods:
        if method not in LEARNED:
            continue
        weights = LEARNED[method].weights
        for mask_label in masks:
            run_dir = Path(out_dir) / "runs" / f"{Path(weights).stem}-{mask_label}"
            if (weights, mask_label) not in runs:
                config = TrainConfig.from_dict(load_checkpoint(WEIGHTS / weights)["train_config"])
                spec = BENCHMARK_MASKS[mask_label]
                config.data.mask = MaskConfig(spec.kind, spec.rate, spec.acceleration, spec.center_fraction,
                                              pool=config.data.mask.pool)
                config.train.device = device
                if is_prepared(data):
                    config.data.source = str(data)
                if steps_per_epoch is not None:
                    config.train.steps_per_epoch = steps_per_epoch
                resume = (run_dir / "last.pt").is_file()
                runs[(weights, mask_label)] = train(config, run_dir, resume=resume, quiet=not progress)
            trained[(method, mask_label)] = runs[(weights, mask_label)]
    return trained
