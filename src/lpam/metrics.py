"""Reported metrics on magnitudes, per slice (SPEC.md section 5):
PSNR = 10 log10(1 / MSE) (data range 1); SSIM as scikit-image computes it (7x7 uniform window, K1 = 0.01,
K2 = 0.03, data range 1); NMSE = ||s - t||^2 / ||t||^2; RMSE = sqrt(mean((s - t)^2)).
Summaries are mean and (population) standard deviation over slices."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

METRICS = ("psnr", "ssim", "nmse", "rmse")


def psnr(recon: np.ndarray, target: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(target, recon, data_range=1.0))


def ssim(recon: np.ndarray, target: np.ndarray) -> float:
    return float(structural_similarity(target, recon, win_size=7, K1=0.01, K2=0.03, data_range=1.0,
                                       gaussian_weights=False))


def nmse(recon: np.ndarray, target: np.ndarray) -> float:
    return float(np.sum((recon - target) ** 2) / np.sum(target**2))


def rmse(recon: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((recon - target) ** 2)))


def slice_metrics(recon: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """All metrics for one 2-D slice (magnitudes, float64)."""
    recon, target = np.abs(recon).astype(np.float64), np.abs(target).astype(np.float64)
    if recon.shape != target.shape or recon.ndim != 2:
        raise ValueError(f"metrics need two 2-D images of the same shape, got {recon.shape} and {target.shape}")
    if not np.isfinite(recon).all():
        raise ValueError("the reconstruction contains NaN or infinite values")
    return {"psnr": psnr(recon, target), "ssim": ssim(recon, target), "nmse": nmse(recon, target),
            "rmse": rmse(recon, target)}


def summarize(per_slice: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean": ..., "std": ...}} over slices."""
    if not per_slice:
        raise ValueError("no slices to summarise")
    return {m: {"mean": float(np.mean([s[m] for s in per_slice])), "std": float(np.std([s[m] for s in per_slice]))}
            for m in METRICS}


def evaluate_contrasts(recons: np.ndarray, targets: np.ndarray, contrasts: Sequence[str]) -> dict[str, dict]:
    """Summaries per contrast for stacks (S, C, H, W); magnitudes are taken here."""
    if recons.shape != targets.shape or recons.ndim != 4:
        raise ValueError(f"expected reconstructions and targets of the same shape (S, C, H, W), got "
                         f"{recons.shape} and {targets.shape}")
    if recons.shape[1] != len(contrasts):
        raise ValueError(f"{recons.shape[1]} contrasts in the data, {len(contrasts)} names given")
    return {c: summarize([slice_metrics(recons[s, j], targets[s, j]) for s in range(recons.shape[0])])
            for j, c in enumerate(contrasts)}
