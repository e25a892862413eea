"""Figures: reconstruction grids with error maps and convergence curves (Phi_eps, eps, ||grad Phi_eps||)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lpam.io import atomic_path  # noqa: E402


def display(image: np.ndarray) -> np.ndarray:
    """Slices are stored (left-right, anterior-posterior); show them with anterior at the top."""
    return np.rot90(image)


def save_figure(figure: plt.Figure, path: str | Path) -> None:
    """Save a figure as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)


def reconstruction_grid(
    target: np.ndarray,
    recons: Mapping[str, np.ndarray],
    contrasts: Sequence[str],
    path: str | Path,
    title: str = "",
    error_scale: float = 0.2,
) -> None:
    """One row per contrast: ground truth, each reconstruction, then each |error| map (x 1/error_scale)."""
    names = list(recons)
    columns = 1 + 2 * len(names)
    figure, axes = plt.subplots(len(contrasts), columns, figsize=(2.1 * columns, 2.5 * len(contrasts)), squeeze=False)
    for row, contrast in enumerate(contrasts):
        truth = np.abs(target[row])
        panels = [(f"{contrast} ground truth", truth, "gray", 1.0)]
        panels += [(f"{contrast} {name}", np.abs(recons[name][row]), "gray", 1.0) for name in names]
        panels += [(f"|error| {name}", np.abs(np.abs(recons[name][row]) - truth), "inferno", error_scale) for name in names]
        for axis, (label, image, cmap, vmax) in zip(axes[row], panels):
            axis.imshow(display(image), cmap=cmap, vmin=0.0, vmax=vmax)
            axis.set_title(label, fontsize=8)
            axis.axis("off")
    if title:
        figure.suptitle(title, fontsize=10)
    save_figure(figure, path)


Series = tuple[str, str, bool]  # (panel title, history key, log scale)
# the panels of convergence.png per TV solver: LPAM's Phi_eps, eps, ||grad Phi_eps||; primal-dual's objective and changes
CONVERGENCE_SERIES: dict[str, tuple[Series, ...]] = {
    "lpam": (("Phi_eps(x^{k+1})", "phi", False), ("eps_k", "eps", True),
             ("||grad Phi_eps(x^{k+1})||", "grad_norm", True)),
    "primal-dual": (("f(x^{k+1}) + g(K x^{k+1})", "objective", False), ("||x^{k+1} - x^k||", "primal_change", True),
                    ("||p^{k+1} - p^k||", "dual_change", True)),
}


def convergence_plot(history: Mapping[str, Sequence], path: str | Path, title: str = "", xlabel: str = "iteration",
                     series: Sequence[Series] = CONVERGENCE_SERIES["lpam"]) -> None:
    """One panel per ``series`` along the iterations of one sample (default LPAM's Phi_eps, eps and
    ||grad Phi_eps||); safeguard steps marked where the history has branches."""
    steps = np.arange(1, len(history[series[0][1]]) + 1)
    safeguard = np.array([b == "safeguard" for b in history.get("branch", [])], dtype=bool)
    figure, axes = plt.subplots(1, len(series), figsize=(13, 3.4))
    for axis, (label, key, log) in zip(axes, series):
        values = np.asarray(history[key], dtype=float)
        axis.plot(steps, values, lw=1.2, label=label)
        if safeguard.any():
            axis.plot(steps[safeguard], values[safeguard], "r.", ms=4, label="safeguard step")
        if log:
            axis.set_yscale("log")
        axis.set_xlabel(xlabel)
        axis.set_title(label, fontsize=9)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    save_figure(figure, path)


def psnr_curves(methods: Mapping[str, Mapping[str, Mapping]], masks: Mapping[str, Mapping], contrasts: Sequence[str],
                path: str | Path, title: str = "") -> None:
    """PSNR (mean +- std) against the achieved sampling rate, one panel per contrast, one line per method
    and mask kind (``methods``: name -> mask label -> contrast -> metric; ``masks``: label -> description)."""
    figure, axes = plt.subplots(1, len(contrasts), figsize=(6 * len(contrasts), 4.2), squeeze=False)
    kinds = list(dict.fromkeys(masks[label]["kind"] for label in masks))  # in the order of the masks
    styles = {kind: ("-", "o") if i == 0 else ("--", "s") for i, kind in enumerate(kinds)}
    for axis, contrast in zip(axes[0], contrasts):
        for index, (name, per_mask) in enumerate(methods.items()):
            color = f"C{index}"
            for kind in kinds:
                labels = sorted((l for l in per_mask if masks[l]["kind"] == kind), key=lambda l: masks[l]["achieved_rate"])
                if not labels:
                    continue
                rates = [masks[l]["achieved_rate"] for l in labels]
                means = [per_mask[l][contrast]["psnr"]["mean"] for l in labels]
                stds = [per_mask[l][contrast]["psnr"]["std"] for l in labels]
                line, marker = styles[kind]
                axis.errorbar(rates, means, yerr=stds, fmt=marker, linestyle=line, color=color, ms=4, capsize=2,
                              label=name if kind == kinds[0] else None)
        axis.set_xlabel("sampling rate (" + ", ".join(f"{k}: {styles[k][0]}" for k in kinds) + ")")
        axis.set_ylabel(f"{contrast} PSNR (dB)")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    save_figure(figure, path)
