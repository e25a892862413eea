"""The joint multi-contrast forward model on a non-Cartesian (radial) trajectory (docs/method.md section 5).

:class:`RadialMRIPhysics` is A = diag(A_1, ..., A_C) with A_j the radial NUFFT of :mod:`lpam.physics.nufft`
(scaled so that ||A_j|| = 1), measurements (B, C, K) single-coil or (B, C, Nc, K) with coil maps; it has the
interface of :class:`~lpam.physics.mri.MRIPhysics`, so the models, the TV solver and the data pipeline take
either. Its zero-filled image is the density-compensated (Pipe-Menon) adjoint, and the data term's gradient
uses the Toeplitz normal operator. :class:`TrajectorySpec` is a trajectory request, as :class:`MaskSpec` is a
mask request (``radial-golden-64``).
"""
from __future__ import annotations

import hashlib
import operator
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from lpam.physics.coils import maps_per_contrast, root_sum_of_squares
from lpam.physics.masks import checked_shape
from lpam.physics.mri import NETWORK_DTYPES, ContrastPhysics, check_kspace_values
from lpam.physics.nufft import RadialNUFFT, radial_trajectory

TRAJECTORY_KINDS = ("radial-golden", "radial-uniform")  # --trajectory: golden-angle or uniform spoke angles
CACHED_OPERATORS = 8  # radial operators kept (building one at 160 x 180 takes ~1.5 s, its weights ~1 s)
_OPERATORS: dict[tuple, RadialNUFFT] = {}


def radial_operator(trajectory: torch.Tensor, shape: tuple[int, int]) -> RadialNUFFT:
    """The single-coil :class:`RadialNUFFT` of ``trajectory`` (2, K) on the grid ``shape``, cached by the
    trajectory's values (the last :data:`CACHED_OPERATORS` are kept)."""
    values = np.ascontiguousarray(trajectory.detach().cpu().to(torch.float64).numpy())
    key = (tuple(shape), values.shape, hashlib.sha1(values.tobytes()).hexdigest())
    if key not in _OPERATORS:
        if len(_OPERATORS) >= CACHED_OPERATORS:
            _OPERATORS.pop(next(iter(_OPERATORS)))
        with warnings.catch_warnings():  # torch's notes on its beta sparse layouts, not the user's concern
            warnings.filterwarnings("ignore", message="Sparse", category=UserWarning)
            _OPERATORS[key] = RadialNUFFT(trajectory, shape)
    return _OPERATORS[key]


@dataclass(frozen=True)
class TrajectorySpec:
    """A trajectory request: ``kind`` radial-golden (spoke j at j x 111.25 deg) or radial-uniform (j x 180 /
    spokes deg), ``spokes`` spokes of ``readout`` samples (default 2 max(H, W): 2x readout oversampling)."""

    kind: str = "radial-golden"
    spokes: int = 64
    readout: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in TRAJECTORY_KINDS:
            raise ValueError(f"unknown trajectory {self.kind!r}; choose one of {', '.join(TRAJECTORY_KINDS)}")
        for name, low in (("spokes", 1), ("readout", 2)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"trajectory {name} must be a whole number >= {low}, got {value!r}")

    def label(self) -> str:
        """Short name, e.g. ``radial-golden-64`` (``radial-golden-64x256`` with a readout given)."""
        return f"{self.kind}-{self.spokes}" + ("" if self.readout is None else f"x{self.readout}")

    def describe(self) -> dict:
        """For metrics.json: kind, spokes and the readout when given."""
        described: dict = {"kind": self.kind, "spokes": self.spokes}
        if self.readout is not None:
            described["readout"] = self.readout
        return described

    def trajectory(self, shape: tuple[int, int]) -> torch.Tensor:
        """The k-space coordinates (2, spokes x readout) for images of ``shape`` (:func:`radial_trajectory`)."""
        return radial_trajectory(self.spokes, self.readout, self.kind.removeprefix("radial-"), shape)

    def physics(self, shape: tuple[int, int], contrasts: int,
                maps: torch.Tensor | None = None) -> "RadialMRIPhysics":
        """The physics of this trajectory, shared by the contrasts."""
        return RadialMRIPhysics(self.trajectory(shape), shape, contrasts, maps)


def samples_per_pixel(physics: "RadialMRIPhysics") -> float:
    """K / (H W): the samples per contrast over the image's grid points (the mask's sampling rate analogue)."""
    return physics.samples / (physics.shape[0] * physics.shape[1])


def _maps_of_contrast(maps: torch.Tensor | None, contrast: int) -> torch.Tensor | None:
    """The maps of contrast ``contrast``: (Nc, H, W) when shared by the batch, else (B, Nc, H, W)."""
    if maps is None:
        return None
    per_contrast = maps_per_contrast(maps)
    chosen = per_contrast[:, contrast if per_contrast.shape[1] > 1 else 0]
    return chosen[0] if chosen.shape[0] == 1 else chosen


class RadialMRIPhysics(ContrastPhysics):
    """A = diag(A_1, ..., A_C), A_j = s N_j (S_c x)_c: ``trajectory`` (2, K) shared by the ``contrasts``, or
    (C, 2, K) one per contrast (radians per pixel, :func:`radial_trajectory`); images of ``shape`` (H, W);
    optional coil ``maps`` (Nc, H, W), (B, Nc, H, W) or (B, C, Nc, H, W) as for MRIPhysics. Measurements
    (B, C, K), or (B, C, Nc, K) with maps; every trajectory sample is measured (P = I)."""

    cartesian = False

    def __init__(self, trajectory: torch.Tensor, shape: tuple[int, int], contrasts: int,
                 maps: torch.Tensor | None = None) -> None:
        for name, value in (("trajectory", trajectory), ("coil maps", maps)):
            if value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        contrasts = operator.index(contrasts)
        if trajectory.ndim == 3 and trajectory.shape[0] != contrasts:
            raise ValueError(f"per-contrast trajectories hold {trajectory.shape[0]} contrasts, the data has {contrasts}")
        if maps is not None and not torch.isfinite(torch.view_as_real(maps) if maps.is_complex() else maps).all():
            raise ValueError("coil maps contain NaN or infinite values")
        self.trajectory, self.contrasts, self.maps = trajectory, contrasts, maps
        self._shape = checked_shape(shape, "image")
        trajectories = list(trajectory) if trajectory.ndim == 3 else [trajectory] * contrasts
        bases = [radial_operator(t, self._shape) for t in trajectories]
        if len({b.trajectory.shape[1] for b in bases}) != 1:
            raise ValueError("per-contrast trajectories must have the same number of samples K")
        if maps is not None and maps_per_contrast(maps).shape[1] not in (1, contrasts):
            raise ValueError(f"coil maps have {maps_per_contrast(maps).shape[1]} contrasts, the data has {contrasts}")
        self.operators = [base.with_maps(_maps_of_contrast(maps, j)) for j, base in enumerate(bases)]

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return self._shape

    @property
    def samples(self) -> int:
        """K, the k-space samples per contrast (and coil)."""
        return self.operators[0].trajectory.shape[1]

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """A^H A x per contrast, by the Toeplitz embedding of each A_j."""
        return torch.stack([op.normal(image[:, j]) for j, op in enumerate(self.operators)], dim=1)

    def zero_filled(self, measurements: torch.Tensor) -> torch.Tensor:
        """The density-compensated images A_j^H (c w y_j) (B, C, H, W) (:meth:`RadialNUFFT.zero_filled`)."""
        return torch.stack([op.zero_filled(measurements[:, j]) for j, op in enumerate(self.operators)], dim=1)

    def root_sum_of_squares(self, measurements: torch.Tensor) -> torch.Tensor:
        """sqrt(sum_c |density-compensated coil image c|^2) (B, C, H, W) (multi-coil physics only)."""
        if not self.multi_coil:
            raise ValueError("root-sum-of-squares combination needs multi-coil physics (coil maps)")
        coil_images = [op.coil_zero_filled(measurements[:, j]) for j, op in enumerate(self.operators)]
        return root_sum_of_squares(torch.stack(coil_images, dim=1), dim=2)

    def check(self, measurements: torch.Tensor, dtypes: tuple[torch.dtype, ...] = NETWORK_DTYPES) -> None:
        """Validate measurements (B, C, K) or (B, C, Nc, K) against this physics, naming the problem."""
        if not isinstance(measurements, torch.Tensor):
            raise TypeError(f"k-space must be a torch.Tensor, got {type(measurements).__name__}")
        layout = "(B, C, Nc, K) with coil maps" if self.multi_coil else "(B, C, K)"
        if measurements.ndim != (4 if self.multi_coil else 3):
            raise ValueError(f"k-space samples must have shape {layout} with K = {self.samples}, got "
                             f"{tuple(measurements.shape)}")
        if self.multi_coil and measurements.shape[2] != self.num_coils:
            raise ValueError(f"coil maps hold {self.num_coils} coils; the k-space has {measurements.shape[2]} coils")
        if measurements.shape[1] != self.contrasts:
            raise ValueError(f"the physics has {self.contrasts} contrasts, the k-space {measurements.shape[1]}")
        if measurements.shape[-1] != self.samples:
            raise ValueError(f"the trajectory has K = {self.samples} samples, the k-space {measurements.shape[-1]}")
        check_kspace_values(measurements, dtypes)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "RadialMRIPhysics":
        """This physics with its maps on ``device`` (the operators follow their input's device and dtype)."""
        if self.maps is None:
            return self
        maps = self.maps.to(torch.device(device), dtype or self.maps.dtype)
        return self if maps is self.maps else RadialMRIPhysics(self.trajectory, self.shape, self.contrasts, maps)

    def sample(self, index: int) -> "RadialMRIPhysics":
        """The physics of sample ``index`` of a batch (the trajectory, and maps without a batch axis, shared)."""
        if self.maps is None or self.maps.ndim == 3 or self.maps.shape[0] == 1:
            return self
        return RadialMRIPhysics(self.trajectory, self.shape, self.contrasts, self.maps[index : index + 1])

    @staticmethod
    def batch(physics: list["RadialMRIPhysics"]) -> "RadialMRIPhysics":
        """One physics for samples of batch 1 sharing their trajectory: their maps stacked along the batch."""
        first = physics[0]
        if any(p.trajectory is not first.trajectory and not torch.equal(p.trajectory, first.trajectory)
               for p in physics[1:]):
            raise ValueError("samples of one batch must share their trajectory")
        if first.maps is None:
            return first
        return RadialMRIPhysics(first.trajectory, first.shape, first.contrasts,
                                torch.cat([maps_per_contrast(p.maps) for p in physics]))
