"""The jobs behind the CLI, as a Python API: `solve` (classical LPAM with TV) and `demo` (LPAM-net with
the shipped weights against zero-filled and joint TV) on the embedded data."""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from lpam.algorithm.lpam import History
from lpam.algorithm.primal_dual import HISTORY_KEYS, PrimalDualHistory
from lpam.checkpoint import load_model
from lpam.data.embedded import load_split, simulate_acquisition, simulate_kspace
from lpam.io import check_output_folder, save_json, save_npy, staged_outputs
from lpam.metrics import evaluate_contrasts
from lpam.models.lpam_net import LPAMNet, count_parameters
from lpam.models.registry import model_type_of, run_phases
from lpam.physics.masks import MaskSpec
from lpam.plotting import CONVERGENCE_SERIES, convergence_plot, reconstruction_grid
from lpam.physics.mri import ContrastPhysics, MRIPhysics
from lpam.physics.radial import TrajectorySpec
from lpam.problem import normalised_kspace
from lpam.reconstruction import SOLVER_NAMES, TVHistory, TVSettings, reconstruct_tv
from lpam.tv_tuning import tuned_settings

REGULARIZERS = {"joint-tv": "joint", "separate-tv": "separate"}


def history_json(history: TVHistory, axial_indices: Sequence[int]) -> dict:
    """history.json: one entry per slice with the history's lists (LPAM: phi, grad_norm, eps, branch, backtracks,
    failed; primal-dual: objective, primal_change, dual_change)."""
    return {"slices": [{"axial_index": int(z), **history.per_sample(i)} for i, z in enumerate(axial_indices)]}


def branch_counts(history: History) -> dict[str, int]:
    flat = [b for sample in history.branch for b in sample]
    return {"residual": flat.count("residual"), "safeguard": flat.count("safeguard")}


def convergence_summary(history: TVHistory) -> dict:
    """metrics.json's record of how the TV solve ended: LPAM's branch counts ({"branches": ...}); primal-dual's
    last objective and changes per slice ({"primal_dual": {"objective": [...], ...}})."""
    if isinstance(history, PrimalDualHistory):
        return {"primal_dual": {key: [values[-1] for values in getattr(history, key)] for key in HISTORY_KEYS}}
    return {"branches": branch_counts(history)}


def solve_embedded(
    out_dir: str | Path,
    regularizer: str = "joint-tv",
    mask: MaskSpec | TrajectorySpec | None = None,
    split: str = "test",
    slices: slice | Sequence[int] | None = slice(0, 4),
    settings: TVSettings | None = None,
    noise_std: float = 0.0,
    progress: bool = True,
    contrasts: Sequence[str] = ("T1", "T2"),
) -> dict:
    """Reconstruct embedded slices (``contrasts``: any of T1, T2, PD, one block each) from simulated k-space (the
    mask ``mask`` builds, or its trajectory: the radial NUFFT) with TV solved by ``settings.solver`` (LPAM or
    primal-dual); writes recon.npy, figure.png, convergence.png, history.json and metrics.json into ``out_dir``
    and returns the metrics."""
    if regularizer not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {regularizer!r}; choose one of {', '.join(REGULARIZERS)}")
    check_output_folder(out_dir)
    mask = mask or MaskSpec()
    settings = settings or tuned_settings(mask, REGULARIZERS[regularizer])
    settings.coupling = REGULARIZERS[regularizer]
    data = load_split(split, contrasts, slices=slices)
    kspace, physics, sampled = simulate_acquisition(data.images, mask, noise_std)
    started = time.perf_counter()
    recon, history = reconstruct_tv(kspace, physics, settings, progress=progress)
    seconds = time.perf_counter() - started
    baseline = physics.zero_filled(kspace)
    contrasts = list(data.contrasts)
    metrics = {
        "methods": {
            regularizer: evaluate_contrasts(recon.numpy(), data.images.numpy(), contrasts),
            "zero-filled": evaluate_contrasts(baseline.numpy(), data.images.numpy(), contrasts),
        },
        "mask": sampled,
        "slices": [int(z) for z in data.axial_indices],
        "split": split,
        "settings": {"solver": settings.solver, "lam": settings.lam, "iterations": settings.iterations,
                     "eps0": settings.eps0, "noise_std": noise_std, "seconds": round(seconds, 2)},
        **convergence_summary(history),
    }
    with staged_outputs(out_dir) as out:
        save_npy(recon.numpy(), out / "recon.npy")
        save_json(history_json(history, data.axial_indices), out / "history.json")
        save_json(metrics, out / "metrics.json")
        reconstruction_grid(data.images[0].numpy(), {"zero-filled": baseline[0].numpy(), regularizer: recon[0].numpy()},
                            contrasts, out / "figure.png", title=f"axial slice {data.axial_indices[0]}, {regularizer}")
        convergence_plot(history.per_sample(0), out / "convergence.png", series=CONVERGENCE_SERIES[settings.solver],
                         title=f"{SOLVER_NAMES[settings.solver]} {regularizer}, slice {data.axial_indices[0]}")
    return metrics


@torch.no_grad()
def run_network(model: LPAMNet, kspace: torch.Tensor, physics: ContrastPhysics, mode: str = "plain",
                history: History | None = None, progress: bool = False, phases: int | None = None) -> torch.Tensor:
    """LPAM-net slice by slice (batch 1 keeps memory flat) on the model's device; results on the CPU.
    ``kspace`` (S, C, H, W), or multi-coil (S, C, Nc, H, W), are the measurements of ``physics`` (its masks and
    maps shared by the slices or one per slice). numpy arrays and complex128 k-space are converted; k-space
    scaled far from the training data is normalised for a network that does not normalise itself (with a
    warning) and the result scaled back (:func:`lpam.problem.normalised_kspace`). ``phases`` (default: the trained K) may exceed K."""
    kspace, scale = as_tensor(kspace, torch.complex64), torch.ones(())
    if not model.config.scale_equivariant:  # a scale-equivariant network normalises the data itself
        physics.check(kspace)  # (the model checks its input; this is before the normalisation)
        kspace, scale, message = normalised_kspace(kspace, physics)
        if message is not None:
            warnings.warn(message, stacklevel=2)
    device = next(model.parameters()).device
    outputs = []
    for i in tqdm(range(kspace.shape[0]), desc=f"LPAM-net ({mode})", disable=not progress, dynamic_ncols=True):
        sample_history = None if history is None else History()
        outputs.append(model(kspace[i : i + 1].to(device), physics.sample(i).to(device), phases=phases, mode=mode,
                             history=sample_history).cpu())
        if history is not None:
            history.add_samples(sample_history)
    return torch.cat(outputs) * scale


def as_tensor(value: torch.Tensor | np.ndarray, complex_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``value`` as a tensor (numpy arrays converted); complex values in ``complex_dtype`` when given."""
    tensor = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor or numpy array, got {type(value).__name__}")
    return tensor.to(complex_dtype) if complex_dtype is not None and tensor.is_complex() else tensor


def format_table(metrics: dict, contrasts: Sequence[str]) -> str:
    """Plain-text table: method, then PSNR / SSIM (mean +- std) per contrast."""
    header = f"{'method':<22}" + "".join(f"{c + ' PSNR':>17}{c + ' SSIM':>17}" for c in contrasts)
    lines = [header, "-" * len(header)]
    for name, per_contrast in metrics["methods"].items():
        cells = ""
        for c in contrasts:
            psnr, ssim = per_contrast[c]["psnr"], per_contrast[c]["ssim"]
            cells += f"{psnr['mean']:>10.2f} ±{psnr['std']:>5.2f}{ssim['mean']:>11.4f} ±{ssim['std']:>4.3f}"
        lines.append(f"{name:<22}{cells}")
    return "\n".join(lines)


def _demo_reconstructions(model: torch.nn.Module, label: str, kspace: torch.Tensor, physics: ContrastPhysics,
                          tv_settings: TVSettings | None, history: History | None, progress: bool,
                          phases: int | None) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """(images, seconds) per method of the demo: zero-filled, joint TV, the model in plain mode and, when
    ``history`` is given, in convergent mode (recording it)."""
    recons, seconds = {"zero-filled": physics.zero_filled(kspace)}, {}
    runs = {"joint-tv": lambda: reconstruct_tv(kspace, physics, tv_settings or TVSettings(), progress=progress)[0],
            label: lambda: run_network(model, kspace, physics, progress=progress, phases=phases)}
    if history is not None:
        runs["lpam-net-convergent"] = lambda: run_network(model, kspace, physics, "convergent", history, progress,
                                                          phases=phases)
    for name, run in runs.items():
        started = time.perf_counter()
        recons[name] = run()
        seconds[name] = time.perf_counter() - started
    return recons, seconds


def run_demo(
    out_dir: str | Path = "lpam-demo",
    checkpoint: str | Path | None = None,
    slices: slice | Sequence[int] | None = None,
    tv_settings: TVSettings | None = None,
    convergent: bool = False,
    progress: bool = True,
    device: str = "cpu",
    phases: int | None = None,
) -> dict:
    """The README's main job: the embedded test slab at 20% radial, zero-filled vs joint TV vs LPAM-net (or
    the checkpoint's model, labelled by its type: ``metrics["model"]``), in plain mode (``lpam-net``) and
    convergent mode (``lpam-net-convergent``, history_convergent.json, convergence.png). Convergent mode runs
    for a convergent network (step rule "descent", docs/method.md section 4b), where it is the headline, or
    when ``convergent`` is set; ``phases`` runs the network for that many phases (default: the trained K;
    more repeat the last phase's steps)."""
    check_output_folder(out_dir)
    model = load_model(checkpoint, map_location=device)
    label = model_type_of(model.config)
    if model.config.contrasts != 2:
        raise ValueError(f"the demo reconstructs T1 and T2; the checkpoint's model reconstructs "
                         f"{model.config.contrasts} contrasts")
    if convergent and label != "lpam-net":
        raise ValueError(f"--convergent needs an LPAM-net checkpoint; this one holds a {label}")
    data = load_split("test", slices=slices)
    mask = MaskSpec()
    sampling = mask.build(tuple(data.images.shape[-2:]))
    physics = MRIPhysics(sampling, data.images.shape[1])
    kspace = simulate_kspace(data.images, sampling)
    contrasts, truth = list(data.contrasts), data.images.numpy()
    headline = "lpam-net-convergent" if model.config.natural_mode == "convergent" else label
    history = History() if convergent or headline == "lpam-net-convergent" else None
    recons, seconds = _demo_reconstructions(model, label, kspace, physics, tv_settings, history, progress, phases)
    metrics = {
        "methods": {name: evaluate_contrasts(r.numpy(), truth, contrasts) for name, r in recons.items()},
        "mask": {**mask.describe(), "achieved_rate": float(sampling.float().mean())},
        "slices": [int(z) for z in data.axial_indices],
        "split": "test",
        "model": label,
        "params": {label: count_parameters(model)},
        "phases": run_phases(model, "convergent" if history is not None else "plain", phases),
        "trained_phases": getattr(model.config, "phases", None),
        "seconds_per_pair": {name: s / len(data.axial_indices) for name, s in seconds.items()},
    }
    if history is not None:
        metrics["convergent"] = branch_counts(history)
    middle = len(data.axial_indices) // 2
    metrics["headline"] = headline
    shown = {name: r[middle].numpy() for name, r in recons.items() if name in ("zero-filled", "joint-tv", headline)}
    with staged_outputs(out_dir) as out:
        if history is not None:
            save_json(history_json(history, data.axial_indices), out / "history_convergent.json")
            convergence_plot(history.per_sample(0), out / "convergence.png", xlabel="phase",
                             title=f"LPAM-net convergent mode, slice {data.axial_indices[0]}")
        save_json(metrics, out / "metrics.json")
        reconstruction_grid(truth[middle], shown, contrasts, out / "figure.png",
                            title=f"embedded test slab, axial slice {data.axial_indices[middle]}, radial 20%")
    return metrics
