"""The operator interface of every forward model (docs/method.md section 1): a linear map A with its adjoint
A^H, the normal operator A^H A, the least-squares data term built from them, and a norm estimate.

A new acquisition model is one subclass: ``forward``, ``adjoint`` and ``sampled`` (the projection onto the
measured samples); the data term, its gradient, the normal operator and the norm come with the base class.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable

import torch

POWER_ITERATIONS = 30  # power iterations for ||A||: the ratio test converges to ~1e-3 on our operators
NORM_SEED = 0  # the power iteration's random start, fixed so that the estimate is reproducible


def half_squared_norm(residual: torch.Tensor) -> torch.Tensor:
    """1/2 ||r||^2 per sample of a complex residual r (summed over all axes but the first)."""
    return 0.5 * torch.view_as_real(residual).square().flatten(1).sum(1)


class LinearOperator(ABC):
    """A linear map A from images to measurements (complex tensors), batched over the leading axes."""

    @abstractmethod
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """A x."""

    @abstractmethod
    def adjoint(self, measurements: torch.Tensor) -> torch.Tensor:
        """A^H y."""

    @abstractmethod
    def sampled(self, measurements: torch.Tensor) -> torch.Tensor:
        """P y: ``measurements`` restricted to the samples the operator measures (zero elsewhere)."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward(image)

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """A^H A x."""
        return self.adjoint(self.forward(image))

    def data_fidelity(self, image: torch.Tensor, measurements: torch.Tensor) -> torch.Tensor:
        """f(x) = 1/2 ||A x - P y||^2 per sample (summed over all axes but the first)."""
        return half_squared_norm(self.forward(image) - self.sampled(measurements))

    def data_fidelity_gradient(self, image: torch.Tensor, measurements: torch.Tensor) -> torch.Tensor:
        """grad f(x) = A^H (A x - y), the gradient of f as a real function of (Re x, Im x)."""
        return self.adjoint(self.forward(image) - measurements)

    def data_value_and_gradient(self, measurements: torch.Tensor
                                ) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """x -> (f(x), grad f(x)) with one A x: the residual r = A x - P y gives f = 1/2 ||r||^2 and
        grad f = A^H r (A^H applies P, so A^H r = A^H (A x - y))."""
        def value_and_gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            residual = self.forward(image) - self.sampled(measurements)
            return half_squared_norm(residual), self.adjoint(residual)
        return value_and_gradient

    def data_gradient(self, measurements: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """x -> grad f(x) for fixed measurements y (what the solver calls at every step):
        :meth:`data_fidelity_gradient`; an operator with a cheap normal operator may precompute A^H y."""
        return lambda image: self.data_fidelity_gradient(image, measurements)

    def norm(self, image_like: torch.Tensor, iterations: int = POWER_ITERATIONS) -> float:
        """||A|| = sqrt(largest eigenvalue of A^H A), by power iteration from a seeded random image shaped like
        ``image_like`` (the largest value over its batch)."""
        generator = torch.Generator().manual_seed(NORM_SEED)
        x = torch.randn(image_like.shape, dtype=torch.complex128, generator=generator)
        x = x.to(image_like.device, image_like.dtype if image_like.is_complex() else torch.complex64)
        value = torch.zeros(())
        for _ in range(iterations):
            x = x / torch.linalg.vector_norm(x.flatten(1), dim=1).clamp_min(torch.finfo(x.real.dtype).tiny).reshape(
                (-1,) + (1,) * (x.ndim - 1))
            y = self.normal(x)
            value = torch.linalg.vector_norm(y.flatten(1), dim=1).amax()
            x = y
        return float(value.sqrt())


def simulate_measurements(operator: LinearOperator, image: torch.Tensor, noise_std: float = 0.0,
                          seed: int | None = 0) -> torch.Tensor:
    """y = A x + P n, n complex Gaussian with E|n|^2 = noise_std^2 per measured sample (Re and Im each with
    standard deviation noise_std / sqrt(2)), drawn for the whole measurement shape on the CPU from a generator
    seeded with ``seed`` (fresh entropy for None), so that it is the same on every device."""
    if not (math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be finite and >= 0, got {noise_std}")
    measurements = operator.forward(image)
    if noise_std > 0:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        noise = torch.randn(measurements.shape, dtype=measurements.dtype, generator=generator)  # E|n|^2 = 1
        measurements = measurements + noise_std * operator.sampled(noise.to(measurements.device))
    return measurements
