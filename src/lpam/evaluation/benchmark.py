"""`lpam benchmark`: every method on identical data, masks and metric code.

Methods (docs/method.md sections 3, 4, 7; :mod:`lpam.methods`): zero-filled; joint / separate TV (classical
LPAM, weight tuned on the validation slab); joint TV solved to convergence (``joint-tv-pd``: the Condat-Vu
primal-dual algorithm, its own tuned weight); the learned models from their shipped checkpoints. metrics.json:
methods -> name -> mask label -> contrast -> metric {mean, std}, plus params and seconds_per_pair per method and mask.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from lpam.algorithm.lpam import History
from lpam.checkpoint import load_model_with_checkpoint
from lpam.data.sources import EvaluationData, load_evaluation_data
from lpam.device import resolve_device
from lpam.evaluation.report import machine_description, results_markdown
from lpam.evaluation.scoring import (MethodResult, Reconstructor, evaluate_method, evaluation_batch,
                                     network_reconstructor, summary, tv_reconstructor, zero_filled)
from lpam.io import atomic_path, check_output_folder, save_json, staged_outputs
from lpam.methods import (BENCHMARK_MASKS, BENCHMARK_SAMPLINGS, BENCHMARK_TRAJECTORIES, LEARNED, METHODS, PRIMARY_MASK,
                          TV_METHODS, methods_for, shipped_weights)
from lpam.models.lpam_net import count_parameters
from lpam.options import check_unique
from lpam.physics.masks import MaskSpec
from lpam.physics.radial import TrajectorySpec, samples_per_pixel
from lpam.plotting import convergence_plot, psnr_curves, reconstruction_grid
from lpam.reconstruction import SOLVER_ITERATIONS
from lpam.tv_tuning import tuned_settings
from lpam.workflows import branch_counts, history_json


DEFAULT, TRANSFER = "lpam-net", "lpam-net-radial"  # the mask's default network, the radial one on other masks
TVIterations = dict[str, int]  # iterations of the TV baselines per solver ("lpam", "primal-dual")


def trained_mask_labels(checkpoint: dict) -> list[str]:
    """The mask labels a checkpoint was trained with: its trajectory, or its mask setting and those of its mask
    mix (none if it does not say)."""
    data = (checkpoint.get("train_config") or {}).get("data", {})
    if data.get("trajectory"):
        return [TrajectorySpec(**data["trajectory"]).label()]
    mask = data.get("mask")
    if not mask:
        return []
    return [MaskSpec(m["kind"], m.get("rate"), m.get("acceleration"), m.get("center_fraction")).label()
            for m in [mask, *mask.get("mix", [])]]


class LearnedModels:
    """The learned methods' models, each checkpoint read once; records their sizes and training masks."""

    def __init__(self, checkpoints: dict[tuple[str, str], str | Path] | None, device: str) -> None:
        self.checkpoints, self.device = checkpoints or {}, device
        self.loaded: dict[Path, tuple[torch.nn.Module, list[str]]] = {}
        self.params: dict[str, dict[str, int]] = {}  # method -> mask label -> parameters of its model
        self.trained_on: dict[str, dict[str, list[str]]] = {}

    def path_for(self, method: str, mask_label: str) -> Path:
        """The checkpoint of ``method`` for ``mask_label``: a given one, else the shipped one for the mask."""
        return Path(self.checkpoints.get((method, mask_label)) or shipped_weights(method, mask_label))

    def model_for(self, method: str, mask_label: str) -> torch.nn.Module:
        path = self.path_for(method, mask_label)
        if path not in self.loaded:
            model, payload = load_model_with_checkpoint(path, map_location=self.device)
            self.loaded[path] = (model, trained_mask_labels(payload))
        model, trained_masks = self.loaded[path]
        self.params.setdefault(method, {})[mask_label] = count_parameters(model)
        self.trained_on.setdefault(method, {})[mask_label] = trained_masks
        return model

    def redundant(self, method: str, mask_label: str) -> bool:
        """The transfer row (``lpam-net-radial``) where it is the mask's default network anyway."""
        return method == TRANSFER and self.path_for(method, mask_label) == self.path_for(DEFAULT, mask_label)


def _checked_request(masks: Sequence[str], methods: Sequence[str] | None, contrasts: Sequence[str],
                     subset_every: int, tv_iterations: TVIterations) -> tuple[str, ...]:
    """The methods to run (default: those for ``contrasts``), after checking every option."""
    methods = methods_for(contrasts) if methods is None else tuple(methods)
    unknown = [m for m in masks if m not in BENCHMARK_SAMPLINGS] + [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown mask(s) or method(s) {unknown}; masks: {', '.join(BENCHMARK_SAMPLINGS)}; "
                         f"methods: {', '.join(METHODS)}")
    mismatched = [m for m in methods if m in LEARNED and LEARNED[m].contrasts != tuple(contrasts)]
    if mismatched:
        raise ValueError(f"method(s) {mismatched} reconstruct other contrasts than {', '.join(contrasts)}; "
                         f"for these contrasts use {', '.join(methods_for(contrasts))}")
    if subset_every < 1:
        raise ValueError(f"subset_every must be >= 1, got {subset_every}")
    for name, count in (("tv_iterations", tv_iterations["lpam"]), ("tv_pd_iterations", tv_iterations["primal-dual"])):
        if count < 1:
            raise ValueError(f"{name} must be >= 1, got {count}")
    check_unique(masks, "--masks")
    check_unique(methods, "--methods")
    return methods


def _reconstructor(method: str, mask_label: str, models: LearnedModels,
                   tv_iterations: TVIterations) -> tuple[Reconstructor, History | None]:
    """The method as a reconstructor, with the history it records (the convergent mode's)."""
    if method == "zero-filled":
        return zero_filled, None
    if method in TV_METHODS:
        tv = TV_METHODS[method]
        settings = tuned_settings(BENCHMARK_SAMPLINGS[mask_label], tv.coupling, solver=tv.solver,
                                  iterations=tv_iterations[tv.solver])
        return tv_reconstructor(settings), None
    learned = LEARNED[method]
    history = History() if learned.mode == "convergent" else None
    return network_reconstructor(models.model_for(method, mask_label), learned.mode, history), history


def _measured(dataset: EvaluationData, label: str, positions: list[int]) -> tuple[float, tuple]:
    """(achieved rate, batch) of the benchmark mask or trajectory ``label`` on the slices at ``positions``; a
    trajectory's rate is its samples per grid point K / (H W)."""
    if label in BENCHMARK_TRAJECTORIES:
        batch = evaluation_batch(dataset, BENCHMARK_TRAJECTORIES[label], positions)
        return samples_per_pixel(batch[1]), batch
    sampling = BENCHMARK_SAMPLINGS[label].build(tuple(dataset.images.shape[-2:]))
    return float(sampling.float().mean()), evaluation_batch(dataset, sampling, positions)


def _run_methods(dataset: EvaluationData, masks: Sequence[str], methods: Sequence[str], models: LearnedModels,
                 subset: list[int], tv_iterations: TVIterations, progress: bool) -> tuple[dict, dict[str, float]]:
    """results[method][mask] for every pair, and the achieved rate of every mask. The primary mask runs on
    every slice, the others on ``subset``."""
    full = list(range(dataset.images.shape[0]))
    show = subset[len(subset) // 2]
    results: dict[str, dict[str, MethodResult]] = {m: {} for m in methods}
    achieved = {}
    bar = tqdm(total=len(masks) * len(methods), desc="benchmark", disable=not progress, dynamic_ncols=True)
    for mask_label in masks:
        positions = full if mask_label == PRIMARY_MASK else subset
        achieved[mask_label], batch = _measured(dataset, mask_label, positions)
        for method in methods:
            bar.set_postfix(mask=mask_label, method=method)
            bar.update(1)
            if models.redundant(method, mask_label):
                continue
            reconstruct, history = _reconstructor(method, mask_label, models, tv_iterations)
            results[method][mask_label] = evaluate_method(reconstruct, batch, positions, dataset.contrasts, show)
            results[method][mask_label].history = history
    bar.close()
    return results, achieved


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
    tv_pd_iterations: int = SOLVER_ITERATIONS["primal-dual"],
) -> dict:
    """`lpam benchmark`: every method (default: those for ``contrasts``, :func:`lpam.methods.methods_for`)
    for each mask on ``data`` (the embedded slabs, a prepared dataset or an image file, as
    :func:`lpam.data.sources.load_evaluation_data`; ``split`` of the first two). The primary mask (radial
    20%) runs on all selected slices; the other masks run on every ``subset_every``-th of them (docs/method.md
    section 7). ``checkpoints`` maps (method, mask label) to a checkpoint that replaces the shipped weights
    (see :func:`lpam.evaluation.retrain.retrain`). ``tv_iterations``: LPAM's iterations for joint-tv and
    separate-tv; ``tv_pd_iterations``: the primal-dual iterations of joint-tv-pd."""
    iterations = {"lpam": tv_iterations, "primal-dual": tv_pd_iterations}
    methods = _checked_request(masks, methods, contrasts, subset_every, iterations)
    check_output_folder(out_dir)
    resolve_device(device)  # also when only classical methods (CPU) run: an unavailable device is an error
    started = time.perf_counter()
    dataset = load_evaluation_data(data, split, slices, contrasts)
    subset = list(range(dataset.images.shape[0]))[::subset_every]
    models = LearnedModels(checkpoints, device)
    results, achieved = _run_methods(dataset, masks, methods, models, subset, iterations, progress)
    metrics = _metrics(results, dataset, masks, achieved, subset, models)
    metrics["seconds_total"] = round(time.perf_counter() - started, 1)
    with staged_outputs(out_dir) as staging:
        notes = _notes(metrics, dataset, subset, subset_every, iterations, methods)
        _write_benchmark(staging, metrics, results, dataset, notes, masks, methods, subset)
    return metrics


def _metrics(results: dict[str, dict[str, MethodResult]], dataset: EvaluationData, masks: Sequence[str],
             achieved: dict[str, float], subset: list[int], models: LearnedModels) -> dict:
    """metrics.json of the benchmark."""
    full = list(range(dataset.images.shape[0]))
    return {
        "methods": {m: {k: summary(r, dataset.contrasts) for k, r in per.items()} for m, per in results.items()},
        "subset_methods": {m: {k: summary(r, dataset.contrasts, subset) for k, r in per.items()}
                           for m, per in results.items()},
        "params": models.params,
        "seconds_per_pair": {m: {k: r.seconds / len(r.per_slice) for k, r in per.items()} for m, per in results.items()},
        "masks": {k: {**BENCHMARK_SAMPLINGS[k].describe(), "achieved_rate": achieved[k]} for k in masks},
        "slices": {"all": [dataset.slice_ids[p] for p in full], "subset": [dataset.slice_ids[p] for p in subset]},
        "evaluated_on": {m: {k: "all" if len(r.per_slice) == len(full) else "subset" for k, r in per.items()}
                         for m, per in results.items()},
        "trained_on": models.trained_on,
        "off_mask": {m: [k for k, t in per.items() if k not in t] for m, per in models.trained_on.items()},
        "convergent_branches": {k: branch_counts(r.history) for k, r in results.get("lpam-net-convergent", {}).items()},
        "machine": machine_description(),
    }


def _notes(metrics: dict, dataset: EvaluationData, subset: list[int], subset_every: int,
           tv_iterations: TVIterations, methods: Sequence[str]) -> list[str]:
    """The notes above the tables of results.md."""
    full = dataset.slice_ids
    converged = [f"{name}: {tv.description}, {tv_iterations[tv.solver]} iterations, lam tuned per mask for this "
                 "solver (the `primal_dual` entries of src/lpam/weights/tv_weights.json)."
                 for name, tv in TV_METHODS.items() if tv.solver == "primal-dual" and name in methods]
    return [
        f"Data {dataset.source}"
        + (" (the embedded ICBM slab)" if dataset.source.startswith("embedded") else "")
        + (", measured k-space" if dataset.measured else ", k-space simulated from the magnitudes")
        + f"; {PRIMARY_MASK} on all {len(full)} slices ({full[0]}-{full[-1]}); the other masks "
        + ("on every slice." if subset_every == 1 else f"on the fixed subset of every {subset_every}th slice "
           f"({', '.join(str(dataset.slice_ids[p]) for p in subset)}) to stay within time."),
        "† a learned model applied to a mask it was not trained on (the shipped models: radial 20%, Cartesian lines; "
        "`lpam benchmark --retrain` trains one per mask).",
        f"TV: {tv_iterations['lpam']} LPAM iterations, lam and eps0 tuned per mask and coupling on the validation "
        "slab (scripts/tune_tv.py, src/lpam/weights/tv_weights.json).",
        *converged,
        "PSNR (data range 1) and SSIM (scikit-image, 7x7 uniform window) on magnitudes, mean ± std over slices.",
        f"Machine: {metrics['machine']}; whole run {metrics['seconds_total']:.0f} s.",
    ]


def _write_benchmark(out: Path, metrics: dict, results: dict[str, dict[str, MethodResult]], dataset: EvaluationData,
                     notes: list[str], masks: Sequence[str], methods: Sequence[str], subset: list[int]) -> None:
    """results.md, metrics.json and the figures of `lpam benchmark` into ``out``."""
    show = subset[len(subset) // 2]
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(results_markdown(metrics, dataset.contrasts, notes))
    save_json(metrics, out / "metrics.json")
    for mask_label in masks:
        shown = {m: results[m][mask_label].shown for m in methods
                 if m != "lpam-net-convergent" and mask_label in results[m]}
        reconstruction_grid(dataset.images[show].abs().numpy(), shown, dataset.contrasts, out / f"grid_{mask_label}.png",
                            title=f"{dataset.source} slice {dataset.slice_ids[show]}, {mask_label}")
    psnr_curves(metrics["subset_methods"], metrics["masks"], dataset.contrasts, out / "psnr_vs_rate.png",
                title=f"PSNR vs sampling rate ({dataset.source} subset, {len(subset)} slices)")
    for mask_label, result in results.get("lpam-net-convergent", {}).items():
        positions = list(result.per_slice)  # the slices it ran on, in order
        if mask_label == PRIMARY_MASK or PRIMARY_MASK not in masks:
            convergence_plot(result.history.per_sample(0), out / "convergent_phases.png", xlabel="phase",
                             title=f"lpam-net convergent mode, {mask_label}, slice {dataset.slice_ids[positions[0]]}")
            save_json(history_json(result.history, [dataset.slice_ids[p] for p in positions]),
                      out / "history_convergent.json")
            break
