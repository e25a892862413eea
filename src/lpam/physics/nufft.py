"""Non-Cartesian radial k-space through the Kaiser-Bessel NUFFT of torchkbnufft (docs/method.md section 5).

k-space coordinates are in radians per pixel, omega = (omega_y, omega_x) in [-pi, pi)^2, the convention of
torchkbnufft: the sample at omega of an image x (H, W) with its centre at (H // 2, W // 2) is
X(omega) = sum_n x_n exp(-i omega . (n - centre)). :class:`RadialNUFFT` is A = s N S_c (N the NUFFT, S_c the
coil maps, s a scale that makes ||A|| = 1 for the single-coil operator of the trajectory); every sample is
measured, so P = I.
"""
from __future__ import annotations

import copy
import math
import operator
from typing import Callable

import torch
import torchkbnufft as tkbn
import torchkbnufft.functional as tkbn_functional

from lpam.physics.masks import checked_shape
from lpam.physics.operator import NORM_SEED, POWER_ITERATIONS, LinearOperator

TRAJECTORY_KINDS = ("golden", "uniform")
GOLDEN_RATIO = (1 + math.sqrt(5)) / 2
GOLDEN_ANGLE = math.pi / GOLDEN_RATIO  # 180 deg / golden ratio = 111.246 deg, the radial golden angle
READOUT_OVERSAMPLING = 2  # default samples per spoke: 2x the larger image side (2x readout oversampling)
KB_NEIGHBOURS = 6  # Kaiser-Bessel kernel width in grid points (torchkbnufft's default; grid 2x the image)
DENSITY_ITERATIONS = 50  # Pipe-Menon iterations; full-sampling zero-filled error ~1.2% (10: 5%, 100: 0.6%)
CALIBRATION_WIDTH = 1 / 8  # zero-filled scale: Gaussian of standard deviation min(H, W) / 8 px, smooth


def radial_trajectory(spokes: int, readout: int | None = None, kind: str = "golden",
                      shape: tuple[int, int] | None = None) -> torch.Tensor:
    """k-space coordinates (2, spokes * readout), float64 radians, spoke after spoke, rows (omega_y, omega_x).

    Spoke j has angle theta_j = j * Delta mod pi, Delta = pi / phi (golden, phi the golden ratio: 111.246 deg)
    or pi / spokes (uniform), and samples r_m = pi (2 m - readout) / readout, m = 0 .. readout - 1, so r = 0
    (the centre) is sampled for even ``readout`` and (omega_y, omega_x) = r_m (sin theta_j, cos theta_j) lie in
    [-pi, pi)^2 (theta in [0, pi)). ``readout`` defaults to 2 max(H, W) for ``shape`` = (H, W): a radial step
    2 pi / readout, half the Cartesian step of the larger side (2x readout oversampling).
    """
    if kind not in TRAJECTORY_KINDS:
        raise ValueError(f"unknown trajectory kind {kind!r}; choose one of {', '.join(TRAJECTORY_KINDS)}")
    if readout is None:
        if shape is None:
            raise ValueError("radial_trajectory needs readout or the image shape (H, W) for its default")
        readout = READOUT_OVERSAMPLING * max(checked_shape(shape, "image"))
    spokes, readout = operator.index(spokes), operator.index(readout)
    if spokes < 1 or readout < 2:
        raise ValueError(f"a radial trajectory needs spokes >= 1 and readout >= 2, got {spokes} and {readout}")
    increment = GOLDEN_ANGLE if kind == "golden" else math.pi / spokes
    angles = torch.remainder(torch.arange(spokes, dtype=torch.float64) * increment, math.pi)
    radii = math.pi * (2 * torch.arange(readout, dtype=torch.float64) - readout) / readout
    omega_y = radii[None, :] * torch.sin(angles)[:, None]
    omega_x = radii[None, :] * torch.cos(angles)[:, None]
    return torch.stack([omega_y.flatten(), omega_x.flatten()])


def _check_trajectory(trajectory: torch.Tensor) -> torch.Tensor:
    if trajectory.ndim != 2 or trajectory.shape[0] != 2 or trajectory.shape[1] < 1:
        raise ValueError(f"trajectory must be (2, K) k-space coordinates, got shape {tuple(trajectory.shape)}")
    if trajectory.is_complex() or not torch.isfinite(trajectory).all():
        raise ValueError("trajectory must hold finite real coordinates (radians per pixel)")
    if (trajectory.abs() > math.pi).any():
        raise ValueError("trajectory coordinates must lie in [-pi, pi] (radians per pixel)")
    return trajectory.to(torch.float64)


def _largest_eigenvalue(kernel: torch.Tensor, shape: tuple[int, int]) -> float:
    """lambda_max of the Toeplitz normal operator N^H N (the filter ``kernel``), by power iteration."""
    generator = torch.Generator().manual_seed(NORM_SEED)
    x = torch.randn((1, 1, *shape), dtype=torch.complex128, generator=generator).to(kernel.device)
    value = 0.0
    for _ in range(POWER_ITERATIONS):  # converges to 1e-15 in 30 iterations: the DC eigenvalue stands out
        x = x / torch.linalg.vector_norm(x)
        x = tkbn.ToepNufft()(x, kernel)
        value = float(torch.linalg.vector_norm(x))
    return value


def _toeplitz_kernel(trajectory: torch.Tensor, shape: tuple[int, int], numpoints: int,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """The Toeplitz filter of N^H D N (D = diag(``weights``), default I) on the 2H x 2W grid (ToepNufft's
    convention): fft2 of the point-spread function p(d) = sum_k w_k exp(i omega_k . d), d in [-H, H) x [-W, W),
    stored circularly (ifftshift), since N^H D N x (n) = sum_m p(n - m) x(m). p is the adjoint NUFFT of w at
    size (2H, 2W), centre (H, W), with the same sparse interpolation as the operator (calc_toeplitz_kernel uses
    the table interpolation, 3e-4 off)."""
    double = (2 * shape[0], 2 * shape[1])
    matrices = tkbn.calc_tensor_spmatrix(trajectory, double, numpoints=numpoints)
    adjoint = tkbn.KbNufftAdjoint(double, numpoints=numpoints, dtype=torch.complex128, device=trajectory.device)
    ones = torch.ones((1, 1, trajectory.shape[1]), dtype=torch.complex128, device=trajectory.device)
    psf = adjoint(ones if weights is None else ones * weights, trajectory, interp_mats=matrices)[0, 0]
    return torch.fft.fft2(torch.fft.ifftshift(psf)) / psf.numel()  # / 4HW: ToepNufft's inverse FFT is unscaled


def _gaussian(shape: tuple[int, int], width: float, device: torch.device) -> torch.Tensor:
    """exp(-|n - centre|^2 / (2 width^2)) on the (H, W) grid, centre (H // 2, W // 2), shape (1, H, W)."""
    rows = torch.arange(shape[0], dtype=torch.float64, device=device) - shape[0] // 2
    cols = torch.arange(shape[1], dtype=torch.float64, device=device) - shape[1] // 2
    squared = rows[:, None] ** 2 + cols[None, :] ** 2
    return torch.exp(-squared / (2 * width ** 2)).to(torch.complex128)[None]


def _checked_maps(maps: torch.Tensor | None, shape: tuple[int, int]) -> torch.Tensor | None:
    """Coil maps (Nc, H, W) or (B, Nc, H, W) on the image grid ``shape``, complex (None passes through)."""
    if maps is None:
        return None
    if maps.ndim not in (3, 4) or tuple(maps.shape[-2:]) != shape:
        raise ValueError(f"coil maps must be (Nc, H, W) or (B, Nc, H, W) with (H, W) = {shape}, "
                         f"got {tuple(maps.shape)}")
    return maps.to(torch.promote_types(maps.dtype, torch.complex64))


class _Interpolation(torch.autograd.Function):
    """s N (``adjoint`` False) or s N^H (True) of a :class:`RadialNUFFT` with the other as its backward: for a
    C-linear map y = M v the vector-Jacobian product of torch's complex autograd is M^H (dL/dy)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, operator: "RadialNUFFT", adjoint: bool) -> torch.Tensor:
        ctx.operator, ctx.adjoint = operator, adjoint
        return operator._interpolate(values, adjoint)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return ctx.operator._interpolate(grad, not ctx.adjoint), None, None


class RadialNUFFT(LinearOperator):
    """A x = s N (S_c x)_c: images (B, H, W) -> samples (B, K), or (B, Nc, K) with coil maps (Nc, H, W) or
    (B, Nc, H, W); N the Kaiser-Bessel NUFFT at ``trajectory`` (2, K) (see :func:`radial_trajectory`).

    s = 1 / ||N||, from a power iteration on the Toeplitz normal operator at construction, so that the
    single-coil ||A|| = 1 (with coil maps, sum_c |S_c|^2 <= 1 keeps ||A|| <= 1) and step sizes near 1 stay
    meaningful; s depends only on the trajectory and the image shape. N is KbNufft with sparse interpolation
    matrices (within 1e-5 of the exact non-uniform DFT; the table interpolation is 7e-4 off); the adjoint is
    its exact adjoint KbNufftAdjoint (no density compensation); A^H A is the Toeplitz embedding (ToepNufft,
    kernel from :func:`_toeplitz_kernel`), computed once. The operator follows the image's dtype (complex64
    or complex128; real images are promoted). Autograd through forward / adjoint is :class:`_Interpolation`:
    the backward of s N is s N^H and that of s N^H is s N (torch's own backward through the sparse layout
    costs ~50x the forward at 160 x 180).
    """

    def __init__(self, trajectory: torch.Tensor, shape: tuple[int, int], maps: torch.Tensor | None = None,
                 numpoints: int = KB_NEIGHBOURS) -> None:
        self.trajectory = _check_trajectory(trajectory)
        self.shape = checked_shape(shape, "image")
        self.maps = _checked_maps(maps, self.shape)
        self.numpoints = numpoints
        kernel = _toeplitz_kernel(self.trajectory, self.shape, numpoints)
        self.scale = 1 / math.sqrt(_largest_eigenvalue(kernel, self.shape))
        self.kernel = kernel * self.scale ** 2  # the Toeplitz filter of A^H A (single coil)
        # sparse Kaiser-Bessel interpolation G (built in float64 from scipy's kernel): torchkbnufft's table
        # interpolation forks TorchScript tasks that abort the process at exit under torch 2.13. CSR for G x;
        # the adjoint multiplies by the .t() of what it gets, so it gets the CSC view of CSR(G^T) (10x faster)
        self.interpolation = tuple(matrix.to_sparse_csr() for matrix in tkbn.calc_tensor_spmatrix(
            self.trajectory, self.shape, numpoints=numpoints))
        self.interpolation_adjoint = tuple(matrix.t().to_sparse_csr().t() for matrix in self.interpolation)
        self._cache: dict[tuple[torch.dtype, torch.device], tuple] = {}
        self._weights: torch.Tensor | None = None
        self._data_weights: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def weights(self) -> torch.Tensor:
        """c w (K,), float64, computed on first use: Pipe-Menon density weights w
        (:meth:`_pipe_menon`, :data:`DENSITY_ITERATIONS` iterations) and the least-squares scale
        c = Re<x, z> / ||z||^2, z = A^H (w A x) (single coil), for a smooth Gaussian x of standard deviation
        min(H, W) / 8 px, so that the zero-filled image c A^H (w A x) of a smooth x matches x."""
        if self._weights is None:
            w = self._pipe_menon()
            x = _gaussian(self.shape, CALIBRATION_WIDTH * min(self.shape), self.trajectory.device)[:, None]
            z = self._nufft_adjoint(w * self._nufft(x))
            self._weights = w * (torch.vdot(z.flatten(), x.flatten()).real / torch.vdot(z.flatten(), z.flatten()).real)
        return self._weights

    def _pipe_menon(self) -> torch.Tensor:
        """Pipe-Menon density weights w <- w / |G G^H w| (G the sparse interpolation, w = 1 at first), the
        iteration of torchkbnufft's calc_density_compensation_function on the sparse matrices."""
        _, adjoint, _, _, matrices, transposed = self._operators(torch.complex128, self.trajectory.device)
        w = torch.ones((1, 1, self.trajectory.shape[1]), dtype=torch.complex128, device=self.trajectory.device)
        for _ in range(DENSITY_ITERATIONS):
            gridded = tkbn_functional.kb_spmat_interp_adjoint(w, transposed, adjoint.grid_size)
            w = w / tkbn_functional.kb_spmat_interp(gridded, matrices).abs()
        return w.real.reshape(-1)

    def _operators(self, dtype: torch.dtype, device: torch.device) -> tuple:
        """(KbNufft, KbNufftAdjoint, trajectory, Toeplitz kernel, interpolation matrices) for ``dtype`` on
        ``device``, cached."""
        key = (dtype, device)
        if key not in self._cache:
            real = torch.float64 if dtype == torch.complex128 else torch.float32
            options = {"im_size": self.shape, "numpoints": self.numpoints, "dtype": dtype, "device": device}
            self._cache[key] = (tkbn.KbNufft(**options), tkbn.KbNufftAdjoint(**options),
                                self.trajectory.to(device, real), self.kernel.to(device, dtype),
                                tuple(matrix.to(device, real) for matrix in self.interpolation),
                                tuple(matrix.to(device, real) for matrix in self.interpolation_adjoint))
        return self._cache[key]

    def with_maps(self, maps: torch.Tensor | None) -> "RadialNUFFT":
        """This operator with coil ``maps`` (Nc, H, W) or (B, Nc, H, W) (None: single-coil), sharing the
        trajectory, scale, Toeplitz kernel, interpolation matrices and density weights (nothing recomputed)."""
        self._data_term()  # computed once here (with the density weights), so that every copy shares them
        copied = copy.copy(self)
        copied.maps = _checked_maps(maps, self.shape)
        return copied

    def _interpolate(self, values: torch.Tensor, adjoint: bool) -> torch.Tensor:
        """s N x for coil images (B, Nc, H, W) -> (B, Nc, K), or s N^H y (``adjoint``) for (B, Nc, K)."""
        nufft, nufft_adjoint, trajectory, _, matrices, transposed = self._operators(values.dtype, values.device)
        values = values.contiguous()  # e.g. one contrast of (B, C, Nc, K): the interpolation views its input
        if adjoint:
            return self.scale * nufft_adjoint(values, trajectory, interp_mats=transposed)
        return self.scale * nufft(values, trajectory, interp_mats=matrices)

    def _nufft(self, image: torch.Tensor) -> torch.Tensor:
        """s N x for coil images (B, Nc, H, W) -> (B, Nc, K), differentiable (:class:`_Interpolation`)."""
        return _Interpolation.apply(image, self, False)

    def _nufft_adjoint(self, samples: torch.Tensor) -> torch.Tensor:
        """s N^H y for samples (B, Nc, K) -> coil images (B, Nc, H, W), differentiable."""
        return _Interpolation.apply(samples, self, True)

    def _coil_images(self, image: torch.Tensor) -> torch.Tensor:
        """(S_c x)_c (B, Nc, H, W) for images (B, H, W) (Nc = 1 without maps)."""
        if image.ndim != 3 or tuple(image.shape[-2:]) != self.shape:
            raise ValueError(f"images must be (B, H, W) with (H, W) = {self.shape}, got {tuple(image.shape)}")
        image = image.to(torch.promote_types(image.dtype, torch.complex64))
        return image[:, None] if self.maps is None else image[:, None] * self.maps.to(image.device, image.dtype)

    def _combined(self, coil_images: torch.Tensor) -> torch.Tensor:
        """sum_c conj(S_c) x_c (B, H, W) for coil images (B, Nc, H, W)."""
        if self.maps is None:
            return coil_images[:, 0]
        return (self.maps.to(coil_images.device, coil_images.dtype).conj() * coil_images).sum(1)

    def _coil_samples(self, samples: torch.Tensor) -> torch.Tensor:
        expected = 2 if self.maps is None else 3
        if samples.ndim != expected or samples.shape[-1] != self.trajectory.shape[1]:
            raise ValueError(f"samples must be {'(B, K)' if expected == 2 else '(B, Nc, K)'} with "
                             f"K = {self.trajectory.shape[1]}, got {tuple(samples.shape)}")
        samples = samples.to(torch.promote_types(samples.dtype, torch.complex64))
        return samples[:, None] if self.maps is None else samples

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """A x = s N (S_c x)_c."""
        samples = self._nufft(self._coil_images(image))
        return samples[:, 0] if self.maps is None else samples

    def adjoint(self, measurements: torch.Tensor) -> torch.Tensor:
        """A^H y = s sum_c conj(S_c) N^H y_c."""
        return self._combined(self._nufft_adjoint(self._coil_samples(measurements)))

    def sampled(self, measurements: torch.Tensor) -> torch.Tensor:
        """P y = y: every sample of the trajectory is measured."""
        return measurements

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """A^H A x = sum_c conj(S_c) T (S_c x) with T the Toeplitz embedding of s^2 N^H N (FFTs on a 2H x 2W
        grid; agrees with adjoint(forward(x)) to the NUFFT's accuracy)."""
        coil_images = self._coil_images(image)
        kernel = self._operators(coil_images.dtype, coil_images.device)[3]
        return self._combined(tkbn.ToepNufft()(coil_images, kernel))

    def _data_term(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(d (K,) float64, the Toeplitz filter of A^H D A), computed on first use: the data term's weights
        d = c w / lambda_max(A^H (c w) A), the density weights of :attr:`weights` scaled so that the data term's
        gradient is 1-Lipschitz, as for the Cartesian P F."""
        if self._data_weights is None:
            weights = self.weights
            kernel = _toeplitz_kernel(self.trajectory, self.shape, self.numpoints, weights) * self.scale ** 2
            largest = _largest_eigenvalue(kernel, self.shape)
            self._data_weights = (weights / largest, kernel / largest)
        return self._data_weights

    def _data_weights_like(self, samples: torch.Tensor) -> torch.Tensor:
        return self._data_term()[0].to(samples.device, samples.real.dtype)

    def data_fidelity(self, image: torch.Tensor, measurements: torch.Tensor) -> torch.Tensor:
        """f(x) = 1/2 sum_k d_k |(A x - y)_k|^2 per sample: the density-weighted least squares of radial
        reconstruction (d from :meth:`_data_term`; it equalises the sampling density, without which the
        data term's Hessian A^H A spans two orders of magnitude from the k-space centre to the edge)."""
        residual = self.forward(image) - measurements
        weighted = self._data_weights_like(residual) * residual.abs().square()
        return 0.5 * weighted.flatten(1).sum(1)

    def data_fidelity_gradient(self, image: torch.Tensor, measurements: torch.Tensor) -> torch.Tensor:
        """grad f(x) = A^H D (A x - y)."""
        residual = self.forward(image) - measurements
        return self.adjoint(self._data_weights_like(residual) * residual)

    def data_value_and_gradient(self, measurements: torch.Tensor
                                ) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """x -> (f(x), grad f(x)): the value by the NUFFT, the gradient by the Toeplitz embedding
        (:meth:`data_gradient`), which is cheaper than the adjoint NUFFT that a shared residual would need."""
        gradient = self.data_gradient(measurements)
        return lambda image: (self.data_fidelity(image, measurements), gradient(image))

    def data_gradient(self, measurements: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """x -> A^H D A x - A^H D y with A^H D y computed once and A^H D A by its Toeplitz embedding (FFTs
        only: cheaper than the NUFFT pair, and cheap to differentiate)."""
        projected = self.adjoint(self._data_weights_like(measurements) * measurements)
        kernel = self._data_term()[1]

        def gradient(image: torch.Tensor) -> torch.Tensor:
            coil_images = self._coil_images(image)
            filtered = tkbn.ToepNufft()(coil_images, kernel.to(coil_images.device, coil_images.dtype))
            return self._combined(filtered) - projected

        return gradient

    def coil_zero_filled(self, measurements: torch.Tensor) -> torch.Tensor:
        """The density-compensated coil images s N^H (c w y_c) (B, Nc, H, W) (see :attr:`weights`)."""
        samples = self._coil_samples(measurements)
        return self._nufft_adjoint(self.weights.to(samples.device, samples.real.dtype) * samples)

    def zero_filled(self, measurements: torch.Tensor) -> torch.Tensor:
        """The density-compensated image A^H (c w y) (see :attr:`weights`): for a full radial
        trajectory (spokes >= pi / 2 max(H, W)) it approximates a smooth image x from y = A x."""
        return self._combined(self.coil_zero_filled(measurements))
