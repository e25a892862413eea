"""The joint multi-contrast MRI problem as an LPAM objective: the glue between physics and algorithm.

Images are complex tensors (B, C, H, W), one block per contrast; the measurements y and their forward model
come as a :class:`~lpam.physics.mri.ContrastPhysics` (Cartesian or radial) A = diag(A_1, ..., A_C), and the data term of block j is
f_j(x_j) = 1/2 ||A_j x_j - y_j||^2 (docs/method.md section 1; with coils summed over them).
"""
from __future__ import annotations

import torch

from lpam.algorithm.lpam import Objective, SmoothFunction
from lpam.algorithm.regularizer import Regularizer
from lpam.physics.mri import ContrastPhysics

TRAINED_PEAK_RANGE = (0.1, 10.0)  # peaks within 10x of the training data's (images in [0, 1]) are left as they are


def data_terms(physics: ContrastPhysics, measurements: torch.Tensor) -> list[SmoothFunction]:
    """f_j(x) = 1/2 ||A_j x - y_j||^2 with gradient A_j^H (A_j x - y_j), one per contrast (the two at once
    share A_j x)."""
    return [
        SmoothFunction(
            value=lambda x, op=op, y=measurements[:, j]: op.data_fidelity(x, y),
            grad=op.data_gradient(measurements[:, j]),
            value_and_grad=op.data_value_and_gradient(measurements[:, j]),
        )
        for j, op in enumerate(physics.operators)
    ]


def mri_objective(measurements: torch.Tensor, physics: ContrastPhysics, regularizer: Regularizer) -> Objective:
    """Phi_eps(x) = sum_j 1/2 ||A_j x_j - y_j||^2 + R_eps(x) for the measurements y of ``physics`` (at least
    two contrasts: the blocks of the joint problem). The callers (the models, the TV solver) have checked y
    against the physics (:meth:`ContrastPhysics.check`)."""
    if measurements.shape[1] < 2:
        raise ValueError(f"joint reconstruction needs at least 2 contrasts, got {measurements.shape[1]}")
    return Objective(data_terms(physics.to(measurements.device, measurements.dtype), measurements), regularizer)


def check_measurements(kspace: torch.Tensor, physics: ContrastPhysics, contrasts: int) -> None:
    """A model's input: a ContrastPhysics, measurements valid for it (complex64), ``contrasts`` contrasts."""
    if not isinstance(physics, ContrastPhysics):
        raise TypeError(f"physics must be an lpam.physics.mri.MRIPhysics, got {type(physics).__name__}; build it "
                        "with MRIPhysics(mask, contrasts, maps=None) (or RadialMRIPhysics for a trajectory)")
    physics.check(kspace)
    if kspace.shape[1] != contrasts:
        raise ValueError(f"model expects {contrasts} contrasts, k-space has {kspace.shape[1]}")


def peak_warning(peaks: torch.Tensor, what: str) -> str | None:
    """A message if any nonzero peak magnitude in ``peaks`` lies outside :data:`TRAINED_PEAK_RANGE`, else None."""
    low, high = TRAINED_PEAK_RANGE
    far = (peaks > 0) & ((peaks < low) | (peaks > high))
    if not bool(far.any()):
        return None
    shown = ", ".join(f"{float(p):.3g}" for p in peaks.flatten()[:4])
    return (f"{what} peak(s) {shown} lie far from the training data's scale (images in [0, 1], peaks in "
            f"{low:g}..{high:g})")


def normalised_kspace(measurements: torch.Tensor,
                      physics: ContrastPhysics) -> tuple[torch.Tensor, torch.Tensor, str | None]:
    """(k-space, scale, message): contrasts whose zero-filled image peaks far from the training scale
    (:func:`peak_warning`) are divided by their peak (scale, broadcastable to the images, else 1), so that a
    model sees data like its training data; multiply its output by ``scale``. ``message`` says what was done."""
    peaks = physics.to(measurements.device).zero_filled(measurements).abs().amax(dim=(0, 2, 3))
    message = peak_warning(peaks, "zero-filled image")
    if message is None:
        return measurements, torch.ones(()), None
    low, high = TRAINED_PEAK_RANGE
    scale = torch.where((peaks > 0) & ((peaks < low) | (peaks > high)), peaks, torch.ones_like(peaks))
    return measurements / per_contrast(scale, measurements.ndim).to(measurements.dtype), per_contrast(scale, 4), \
        message + "; normalised to peak 1 for the network and scaled back"


def per_contrast(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """Per-contrast ``values`` (C,) or (B, C) as a view that broadcasts against tensors with ``ndim`` axes whose
    second axis is the contrast: (1 or B, C, 1, ...)."""
    shape = values.shape if values.ndim == 2 else (1, values.shape[0])
    return values.reshape(shape + (1,) * (ndim - 2))
