"""Reported metrics, per 2-D slice on magnitudes s = |recon|, t = |target| with data range 1 (docs/method.md 5):

* PSNR = 10 log10(1 / MSE), MSE = mean((s - t)^2) (scikit-image's peak_signal_noise_ratio; inf if s = t);
* SSIM as scikit-image's structural_similarity computes it: 7x7 uniform window, K1 = 0.01, K2 = 0.03,
  data range 1, sample covariance, mean over the valid part of the image;
* NMSE = ||s - t||^2 / ||t||^2 (fastMRI's);
* RMSE = sqrt(mean((s - t)^2)).

Summaries over slices are the mean and the population standard deviation (ddof = 0).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _magnitudes(recon: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|recon|, |target|) as float64 after checking that both are finite 2-D images of one shape."""
    recon, target = np.abs(np.asarray(recon)).astype(np.float64), np.abs(np.asarray(target)).astype(np.float64)
    if recon.ndim != 2 or recon.shape != target.shape:
        raise ValueError(f"metrics need two 2-D images of the same shape, got {recon.shape} and {target.shape}")
    if not np.isfinite(recon).all():
        raise ValueError("the reconstruction contains NaN or infinite values")
    if not np.isfinite(target).all():
        raise ValueError("the target contains NaN or infinite values")
    return recon, target


def _psnr(recon: np.ndarray, target: np.ndarray) -> float:
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(target, recon, data_range=1.0))


def _ssim(recon: np.ndarray, target: np.ndarray) -> float:
    return float(structural_similarity(target, recon, win_size=7, K1=0.01, K2=0.03, data_range=1.0,
                                       gaussian_weights=False))


def _nmse(recon: np.ndarray, target: np.ndarray) -> float:
    energy = np.sum(target**2)
    if energy == 0:
        raise ValueError("NMSE is undefined for an all-zero target")
    return float(np.sum((recon - target) ** 2) / energy)


def _rmse(recon: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((recon - target) ** 2)))


# on magnitudes already checked by _magnitudes
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"psnr": _psnr, "ssim": _ssim, "nmse": _nmse,
                                                                 "rmse": _rmse}


def slice_metrics(recon: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """{"psnr", "ssim", "nmse", "rmse"} of one 2-D slice (real or complex; magnitudes are taken)."""
    recon, target = _magnitudes(recon, target)
    return {name: metric(recon, target) for name, metric in METRICS.items()}


def summarize(per_slice: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean": mean, "std": population std}} over slices that all report the same metrics."""
    if not per_slice:
        raise ValueError("no slices to summarise")
    names = list(per_slice[0])
    if any(set(values) != set(names) for values in per_slice):
        raise ValueError(f"the slices report different metrics; expected {names} for every slice")
    columns = {name: np.array([values[name] for values in per_slice], dtype=np.float64) for name in names}
    return {name: {"mean": float(column.mean()), "std": float(column.std())} for name, column in columns.items()}


def evaluate_contrasts(
    recons: np.ndarray, targets: np.ndarray, contrasts: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """{contrast: summarize(slice metrics)} for stacks (S, C, H, W), real or complex (magnitudes taken here)."""
    recons, targets = np.asarray(recons), np.asarray(targets)
    if recons.ndim != 4 or recons.shape != targets.shape:
        raise ValueError(f"expected reconstructions and targets of the same shape (S, C, H, W), got "
                         f"{recons.shape} and {targets.shape}")
    if recons.shape[1] != len(contrasts):
        raise ValueError(f"{recons.shape[1]} contrasts in the data, {len(contrasts)} names given ({list(contrasts)})")
    return {name: summarize([slice_metrics(recons[s, j], targets[s, j]) for s in range(recons.shape[0])])
            for j, name in enumerate(contrasts)}
