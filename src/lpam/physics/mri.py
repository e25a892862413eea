"""The joint multi-contrast MRI forward model as one operator (docs/method.md sections 1 and 5).

Images are complex (B, C, H, W), one block per contrast. Contrast j is measured by its own operator A_j:
A_j = P_j F (single-coil, measurements (B, C, H, W)) or A_j = (P_j F S_jc)_c with coil maps S (multi-coil,
measurements (B, C, Nc, H, W)). ``MRIPhysics`` is A = diag(A_1, ..., A_C): the models take it with the
measurements, ``model(y, physics)``, and simulation, zero-filling, data consistency and the data terms of
the objective all go through it. :class:`ContrastPhysics` is what it shares with the radial
:class:`lpam.physics.radial.RadialMRIPhysics`.
"""
from __future__ import annotations

from abc import abstractmethod

import torch

from lpam.physics.coils import MultiCoilFourier, maps_per_contrast, root_sum_of_squares
from lpam.physics.fourier import MaskedFourier
from lpam.physics.masks import binary_mask_error
from lpam.physics.operator import LinearOperator

ContrastOperator = MaskedFourier | MultiCoilFourier
NETWORK_DTYPES = (torch.complex64,)  # the learned models' precision
SOLVER_DTYPES = (torch.complex64, torch.complex128)  # the classical solver runs in either


def _check_tensor(name: str, value: object) -> None:
    if value is not None and not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}; convert it with "
                        "torch.from_numpy(...)")


def check_kspace_values(measurements: torch.Tensor, dtypes: tuple[torch.dtype, ...]) -> None:
    """k-space must be complex, finite and of one of ``dtypes``."""
    if not measurements.is_complex():
        raise ValueError(f"k-space must be complex, got dtype {measurements.dtype}")
    if not torch.isfinite(torch.view_as_real(measurements)).all():
        raise ValueError("k-space contains NaN or infinite values")
    if measurements.dtype not in dtypes:
        raise TypeError(f"k-space must be {' or '.join(map(str, dtypes))}, got {measurements.dtype}; convert "
                        f"it with kspace.to({dtypes[0]})")


def contrast_operators(mask: torch.Tensor, num_contrasts: int,
                       maps: torch.Tensor | None = None) -> list[ContrastOperator]:
    """One operator per contrast: ``mask`` is (H, W) or (B, H, W) shared, or (B, C, H, W) per contrast;
    with ``maps`` ((Nc, H, W), (B, Nc, H, W) or (B, C, Nc, H, W)) each is a :class:`MultiCoilFourier`."""
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


class ContrastPhysics(LinearOperator):
    """A = diag(A_1, ..., A_C) over ``self.operators`` (one per contrast), with optional coil ``self.maps``:
    what the models, the solver and the data pipeline need of a forward model. Subclasses: the Cartesian
    :class:`MRIPhysics` and the non-Cartesian :class:`lpam.physics.radial.RadialMRIPhysics`."""

    operators: list[LinearOperator]
    contrasts: int
    maps: torch.Tensor | None
    cartesian: bool = True  # measurements on the Cartesian grid (B, C, [Nc,] H, W)

    @property
    def multi_coil(self) -> bool:
        return self.maps is not None

    @property
    def num_coils(self) -> int:
        return maps_per_contrast(self.maps).shape[2] if self.maps is not None else 1

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """A x = (A_j x_j)_j for images (B, C, H, W)."""
        return torch.stack([op.forward(image[:, j]) for j, op in enumerate(self.operators)], dim=1)

    def adjoint(self, measurements: torch.Tensor) -> torch.Tensor:
        """A^H y = (A_j^H y_j)_j, images (B, C, H, W)."""
        return torch.stack([op.adjoint(measurements[:, j]) for j, op in enumerate(self.operators)], dim=1)

    def sampled(self, measurements: torch.Tensor) -> torch.Tensor:
        """P y per contrast."""
        return torch.stack([op.sampled(measurements[:, j]) for j, op in enumerate(self.operators)], dim=1)

    @abstractmethod
    def zero_filled(self, measurements: torch.Tensor) -> torch.Tensor:
        """The zero-filled images (B, C, H, W) of the measurements: the start of the models and solvers and
        the baseline they are compared with."""

    @abstractmethod
    def check(self, measurements: torch.Tensor, dtypes: tuple[torch.dtype, ...] = NETWORK_DTYPES) -> None:
        """Validate measurements against this physics (a ValueError or TypeError naming the problem)."""

    @abstractmethod
    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "ContrastPhysics":
        """This physics on ``device`` (coil maps in the complex ``dtype`` when given)."""

    @abstractmethod
    def sample(self, index: int) -> "ContrastPhysics":
        """The physics of sample ``index`` of a batch."""


class MRIPhysics(ContrastPhysics):
    """A = diag(A_1, ..., A_C) for ``contrasts`` contrasts: ``mask`` (H, W) or (B, H, W) shared by the
    contrasts, or (B, C, H, W) per contrast, 0 / 1 values; optional coil ``maps`` (Nc, H, W), (B, Nc, H, W)
    (one coil array, shared by the contrasts) or (B, C, Nc, H, W) (per contrast)."""

    def __init__(self, mask: torch.Tensor, contrasts: int, maps: torch.Tensor | None = None) -> None:
        _check_tensor("mask", mask)
        _check_tensor("coil maps", maps)
        problem = binary_mask_error(mask)
        if problem is not None:
            raise ValueError(problem)
        if maps is not None and not torch.isfinite(torch.view_as_real(maps) if maps.is_complex() else maps).all():
            raise ValueError("coil maps contain NaN or infinite values")
        self.mask, self.maps, self.contrasts = mask, maps, contrasts
        self.operators = contrast_operators(mask, contrasts, None if maps is None else maps.to(mask.device))

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the images and of k-space."""
        return tuple(self.mask.shape[-2:])  # type: ignore[return-value]

    def zero_filled(self, measurements: torch.Tensor) -> torch.Tensor:
        """A^H y: the zero-filled (with coils: SENSE-combined) images (B, C, H, W)."""
        return self.adjoint(measurements)

    def root_sum_of_squares(self, measurements: torch.Tensor) -> torch.Tensor:
        """Zero-filled coil-combined magnitudes sqrt(sum_c |F^H P y_jc|^2), (B, C, H, W): needs no coil maps
        beyond their count (multi-coil physics only)."""
        if not self.multi_coil:
            raise ValueError("root-sum-of-squares combination needs multi-coil physics (coil maps)")
        coil_images = [op.coil_images(measurements[:, j]) for j, op in enumerate(self.operators)]
        return root_sum_of_squares(torch.stack(coil_images, dim=1), dim=2)

    def check(self, measurements: torch.Tensor, dtypes: tuple[torch.dtype, ...] = NETWORK_DTYPES) -> None:
        """Validate measurements against this physics, with messages that name the problem; ``dtypes``: the
        complex precisions accepted."""
        _check_tensor("k-space", measurements)
        expected = 5 if self.multi_coil else 4
        if measurements.ndim != expected:
            layout = "(B, C, Nc, H, W) with coil maps" if self.multi_coil else "(B, C, H, W)"
            hint = "; multi-coil k-space needs coil sensitivity maps" if measurements.ndim == 5 else ""
            raise ValueError(f"k-space must have shape {layout}, got {tuple(measurements.shape)}{hint}")
        if self.multi_coil and measurements.shape[2] != self.num_coils:
            raise ValueError(f"coil maps {tuple(self.maps.shape)} hold {self.num_coils} coils; the k-space has "
                             f"{measurements.shape[2]} coils")
        if measurements.shape[1] != self.contrasts:
            raise ValueError(f"the physics has {self.contrasts} contrasts, the k-space {measurements.shape[1]}")
        if measurements.is_complex() and tuple(measurements.shape[-2:]) != self.shape:
            raise ValueError(f"k-space has spatial shape {tuple(measurements.shape[-2:])}, mask {self.shape}")
        check_kspace_values(measurements, dtypes)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "MRIPhysics":
        """This physics on ``device`` (coil maps in the complex ``dtype`` when given); itself if nothing moves."""
        device = torch.device(device)
        maps = None if self.maps is None else self.maps.to(device, dtype or self.maps.dtype)
        if self.mask.device == device and (maps is None or maps is self.maps):
            return self
        return MRIPhysics(self.mask.to(device), self.contrasts, maps)

    def sample(self, index: int) -> "MRIPhysics":
        """The physics of sample ``index`` of a batch (masks and maps without a batch axis are shared)."""
        def of_sample(tensor: torch.Tensor | None, unbatched: int) -> torch.Tensor | None:
            if tensor is None or tensor.ndim == unbatched or tensor.shape[0] == 1:
                return tensor
            return tensor[index : index + 1]

        return MRIPhysics(of_sample(self.mask, 2), self.contrasts, of_sample(self.maps, 3))
