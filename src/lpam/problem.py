"""The joint multi-contrast MRI problem as an LPAM objective: the glue between physics and algorithm.

Images are complex tensors (B, C, H, W), one block per contrast. Single-coil k-space has the same shape and
the data term of block j is f_j(x_j) = 1/2 ||P_j F x_j - y_j||^2 (docs/method.md section 1). Multi-coil k-space is
(B, C, Nc, H, W) with coil maps S (Nc, H, W), (B, Nc, H, W) (one coil array per session, shared by the
contrasts) or (B, C, Nc, H, W) (per contrast); then A_j = P_j F S_c and f_j(x_j) = 1/2 sum_c ||A_j x_j - y_jc||^2.
"""
from __future__ import annotations

import torch

from lpam.algorithm.lpam import Objective, SmoothFunction
from lpam.algorithm.regularizer import Regularizer
from lpam.physics.coils import MultiCoilFourier, maps_per_contrast, mask_per_coil, root_sum_of_squares
from lpam.physics.fourier import MaskedFourier, ifft2c
from lpam.physics.masks import binary_mask_error

Operator = MaskedFourier | MultiCoilFourier


def contrast_operators(mask: torch.Tensor, num_contrasts: int, maps: torch.Tensor | None = None) -> list[Operator]:
    """One operator per contrast: ``mask`` is (H, W) or (B, H, W) shared, or (B, C, H, W) per contrast;
    with ``maps`` each is a :class:`MultiCoilFourier` with that contrast's maps."""
    if mask.ndim == 4 and mask.shape[1] != num_contrasts:
        raise ValueError(f"per-contrast mask has {mask.shape[1]} contrasts, the data has {num_contrasts}")
    if mask.ndim not in (2, 3, 4):
        raise ValueError(f"mask must be (H, W), (B, H, W) or (B, C, H, W), got shape {tuple(mask.shape)}")
    masks = list(mask.unbind(1)) if mask.ndim == 4 else [mask] * num_contrasts
    if maps is None:
        return [MaskedFourier(m) for m in masks] if mask.ndim == 4 else [MaskedFourier(mask)] * num_contrasts
    contrast_maps = maps_per_contrast(maps)
    if contrast_maps.shape[1] not in (1, num_contrasts):
        raise ValueError(f"coil maps have {contrast_maps.shape[1]} contrasts, the data has {num_contrasts}")
    if mask.ndim != 4 and contrast_maps.shape[1] == 1:
        return [MultiCoilFourier(mask, contrast_maps[:, 0])] * num_contrasts
    per_contrast = contrast_maps.expand(-1, num_contrasts, -1, -1, -1).unbind(1)
    return [MultiCoilFourier(m, s) for m, s in zip(masks, per_contrast)]


TRAINED_PEAK_RANGE = (0.1, 10.0)  # peaks within 10x of the training data's (images in [0, 1]) are left as they are
NETWORK_DTYPES = (torch.complex64,)  # the learned models' precision
SOLVER_DTYPES = (torch.complex64, torch.complex128)  # the classical solver runs in either


def _check_types(kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None) -> None:
    """Tensors (a TypeError that says how to convert numpy arrays) and a 0 / 1 mask."""
    for name, value in (("k-space", kspace), ("mask", mask), ("coil maps", maps)):
        if value is not None and not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}; convert it with "
                            "torch.from_numpy(...)")
    problem = binary_mask_error(mask)
    if problem is not None:
        raise ValueError(problem)


def check_kspace(kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None,
                 dtypes: tuple[torch.dtype, ...] = NETWORK_DTYPES) -> None:
    """Validate measured k-space, (B, C, H, W), or (B, C, Nc, H, W) with coil ``maps``, against the mask
    (0 / 1 values), with messages that name the problem; ``dtypes``: the complex precisions accepted."""
    _check_types(kspace, mask, maps)
    if maps is not None:
        if kspace.ndim != 5:
            raise ValueError(f"with coil maps, k-space must have shape (B, C, Nc, H, W), got {tuple(kspace.shape)}")
        per_contrast = maps_per_contrast(maps)
        if per_contrast.shape[2] != kspace.shape[2] or per_contrast.shape[-2:] != kspace.shape[-2:]:
            raise ValueError(f"coil maps {tuple(maps.shape)} hold {per_contrast.shape[2]} coils of shape "
                             f"{tuple(per_contrast.shape[-2:])}; the k-space has {kspace.shape[2]} coils of shape "
                             f"{tuple(kspace.shape[-2:])}")
        if per_contrast.shape[0] not in (1, kspace.shape[0]):
            raise ValueError(f"coil maps are for {per_contrast.shape[0]} samples, the k-space has {kspace.shape[0]}")
    elif kspace.ndim == 5:
        raise ValueError(f"multi-coil k-space {tuple(kspace.shape)} needs coil sensitivity maps (maps=...)")
    elif kspace.ndim != 4:
        raise ValueError(f"k-space must have shape (B, C, H, W), got {tuple(kspace.shape)}")
    if kspace.shape[1] < 2:
        raise ValueError(f"joint reconstruction needs at least 2 contrasts, got {kspace.shape[1]}")
    if not kspace.is_complex():
        raise ValueError(f"k-space must be complex, got dtype {kspace.dtype}")
    if tuple(kspace.shape[-2:]) != tuple(mask.shape[-2:]):
        raise ValueError(f"k-space has spatial shape {tuple(kspace.shape[-2:])}, mask {tuple(mask.shape[-2:])}")
    if not torch.isfinite(torch.view_as_real(kspace)).all():
        raise ValueError("k-space contains NaN or infinite values")
    if kspace.dtype not in dtypes:
        raise TypeError(f"k-space must be {' or '.join(map(str, dtypes))}, got {kspace.dtype}; convert it with "
                        f"kspace.to({dtypes[0]})")


def data_terms(operators: list[Operator], kspace: torch.Tensor) -> list[SmoothFunction]:
    """f_j(x) = 1/2 ||A_j x - y_j||^2 with gradient A_j^H (A_j x - y_j), one per contrast."""
    return [
        SmoothFunction(
            value=lambda x, op=op, y=kspace[:, j]: op.data_fidelity(x, y),
            grad=lambda x, op=op, y=kspace[:, j]: op.data_gradient(x, y),
        )
        for j, op in enumerate(operators)
    ]


def mri_objective(kspace: torch.Tensor, mask: torch.Tensor, regularizer: Regularizer,
                  maps: torch.Tensor | None = None) -> Objective:
    """Phi_eps(x) = sum_j 1/2 ||A_j x_j - y_j||^2 + R_eps(x): A_j = P_j F for k-space (B, C, H, W), or
    A_j = (P_j F S_c)_c for k-space (B, C, Nc, H, W) and coil ``maps``."""
    check_kspace(kspace, mask, maps, SOLVER_DTYPES)
    operators = contrast_operators(mask.to(kspace.device), kspace.shape[1], _maps_like(maps, kspace))
    return Objective(data_terms(operators, kspace), regularizer)


def zero_filled(kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
    """A^H y per contrast, the default initial image (docs/method.md section 4); with coil ``maps`` the
    SENSE-combined sum_c conj(S_c) F^H P y_c."""
    operators = contrast_operators(mask.to(kspace.device), kspace.shape[1], _maps_like(maps, kspace))
    return torch.stack([op.adjoint(kspace[:, j]) for j, op in enumerate(operators)], dim=1)


def data_gradient(images: torch.Tensor, kspace: torch.Tensor, mask: torch.Tensor,
                  maps: torch.Tensor | None = None) -> torch.Tensor:
    """A_j^H (A_j x_j - y_j) per contrast for images (B, C, H, W): the gradient of the data terms."""
    operators = contrast_operators(mask.to(kspace.device), kspace.shape[1], _maps_like(maps, kspace))
    return torch.stack([op.data_gradient(images[:, j], kspace[:, j]) for j, op in enumerate(operators)], dim=1)


def zero_filled_rss(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Coil-combined zero-filled magnitudes sqrt(sum_c |F^H P y_c|^2), (B, C, H, W), from multi-coil k-space
    (B, C, Nc, H, W); needs no coil maps."""
    if kspace.ndim != 5:
        raise ValueError(f"multi-coil k-space must have shape (B, C, Nc, H, W), got {tuple(kspace.shape)}")
    return root_sum_of_squares(ifft2c(kspace * (mask_per_coil(mask) != 0).to(kspace.device)), dim=2)


def _maps_like(maps: torch.Tensor | None, kspace: torch.Tensor) -> torch.Tensor | None:
    """Coil maps on the k-space's device, in its complex dtype."""
    return None if maps is None else maps.to(kspace.device, kspace.dtype)


def peak_warning(peaks: torch.Tensor, what: str) -> str | None:
    """A message if any nonzero peak magnitude in ``peaks`` lies outside :data:`TRAINED_PEAK_RANGE`, else None."""
    low, high = TRAINED_PEAK_RANGE
    far = (peaks > 0) & ((peaks < low) | (peaks > high))
    if not bool(far.any()):
        return None
    shown = ", ".join(f"{float(p):.3g}" for p in peaks.flatten()[:4])
    return (f"{what} peak(s) {shown} lie far from the training data's scale (images in [0, 1], peaks in "
            f"{low:g}..{high:g})")


def normalised_kspace(kspace: torch.Tensor, mask: torch.Tensor,
                      maps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, str | None]:
    """(k-space, scale, message): contrasts whose zero-filled image peaks far from the training scale
    (:func:`peak_warning`) are divided by their peak (scale, broadcastable to the images, else 1), so that a
    model sees data like its training data; multiply its output by ``scale``. ``message`` says what was done."""
    peaks = zero_filled(kspace, mask, maps).abs().amax(dim=(0, 2, 3))
    message = peak_warning(peaks, "zero-filled image")
    if message is None:
        return kspace, torch.ones(()), None
    low, high = TRAINED_PEAK_RANGE
    scale = torch.where((peaks > 0) & ((peaks < low) | (peaks > high)), peaks, torch.ones_like(peaks))
    shape = (1, -1) + (1,) * (kspace.ndim - 2)
    return kspace / scale.reshape(shape).to(kspace.dtype), scale.reshape(1, -1, 1, 1), \
        message + "; normalised to peak 1 for the network and scaled back"
