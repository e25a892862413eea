"""The learned feature map g of LPAM-net (SPEC.md section 4): complex 3x3 convolutions, no bias,
in -> 32 -> 32 -> 32 -> 32, the smoothed ReLU s between layers on real and imaginary parts.

A complex convolution with weight A + iB on input p + iq is (A*p - B*q) + i(B*p + A*q). Holding the
real parts of all channels before the imaginary parts, it is one real convolution with the block weight
[[A, -B], [B, A]]: 4 real products per complex one, done by a single large (fast) real convolution.

J_g^T is written by hand (transposed convolutions with the same weights, times s'), so that
grad r_eps(g(x)) costs one forward and one backward pass; it is built from differentiable torch ops, so
training differentiates through it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lpam.algorithm.smoothing import smoothed_l21, smoothed_l21_grad, smoothed_relu, smoothed_relu_derivative

G_INITS = ("tv", "random")


def complex_to_channels(blocks: list[torch.Tensor]) -> torch.Tensor:
    """Complex images (B, H, W) -> real tensor (B, 2N, H, W): [Re x_1..Re x_N, Im x_1..Im x_N]."""
    return torch.cat([torch.stack([x.real for x in blocks], 1), torch.stack([x.imag for x in blocks], 1)], 1)


def channels_to_complex(channels: torch.Tensor) -> list[torch.Tensor]:
    """Inverse of :func:`complex_to_channels`."""
    n = channels.shape[1] // 2
    return [torch.complex(channels[:, j], channels[:, n + j]) for j in range(n)]


def tv_filters(num_inputs: int) -> torch.Tensor:
    """3x3 kernels of +D and -D (forward differences, vertical and horizontal) for each input channel.

    Returns (4 * num_inputs, num_inputs, 3, 3): [+Dv x_1, +Dh x_1, ..., then the same negated].
    """
    vertical = torch.zeros(3, 3)
    vertical[1, 1], vertical[2, 1] = -1.0, 1.0
    horizontal = torch.zeros(3, 3)
    horizontal[1, 1], horizontal[1, 2] = -1.0, 1.0
    positive = torch.zeros(2 * num_inputs, num_inputs, 3, 3)
    for j in range(num_inputs):
        positive[2 * j, j] = vertical
        positive[2 * j + 1, j] = horizontal
    return torch.cat([positive, -positive], 0)


class ComplexCNN(nn.Module):
    """g(x_1..x_N): complex CNN on the stacked blocks, output real features (B, 2 * out_channels, H, W).

    ``out_channels`` defaults to ``features`` (no projection back, SPEC.md section 4).
    """

    def __init__(
        self,
        in_channels: int,
        features: int = 32,
        layers: int = 4,
        delta: float = 0.01,
        init: str = "tv",
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        if init not in G_INITS:
            raise ValueError(f"unknown initialisation {init!r} for g; choose one of {', '.join(G_INITS)}")
        if layers < 2:
            raise ValueError(f"g needs at least 2 layers, got {layers}")
        self.in_channels, self.features, self.delta = in_channels, features, delta
        widths = [in_channels] + [features] * (layers - 1) + [out_channels or features]
        self.weight_real = nn.ParameterList()
        self.weight_imag = nn.ParameterList()
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            std = math.sqrt(2.0 / (9 * (c_in + c_out))) / math.sqrt(2)  # Xavier, split over Re and Im
            self.weight_real.append(nn.Parameter(torch.randn(c_out, c_in, 3, 3) * std))
            self.weight_imag.append(nn.Parameter(torch.randn(c_out, c_in, 3, 3) * std))
        if init == "tv":
            self._init_as_tv()

    @torch.no_grad()
    def _init_as_tv(self) -> None:
        """Unrolled joint TV (SPEC.md section 4): layer 1 = +-D, later layers identity on those channels,
        all other weights at 1% of their Xavier scale."""
        for real, imag in zip(self.weight_real, self.weight_imag):
            real.mul_(0.01)
            imag.mul_(0.01)
        filters = tv_filters(self.in_channels)
        active = filters.shape[0]
        if active > self.features:
            raise ValueError(f"TV initialisation needs {active} features, g has {self.features}")
        self.weight_real[0][:active] = filters
        self.weight_imag[0][:active] = 0.0
        for real, imag in zip(self.weight_real[1:], self.weight_imag[1:]):
            real[:active, :active] = 0.0
            imag[:active, :active] = 0.0
            real[range(active), range(active), 1, 1] = 1.0

    def block_weights(self) -> list[torch.Tensor]:
        """Real block weights [[A, -B], [B, A]] of every layer."""
        return [
            torch.cat([torch.cat([a, -b], 1), torch.cat([b, a], 1)], 0)
            for a, b in zip(self.weight_real, self.weight_imag)
        ]

    def _forward_layers(self, x: torch.Tensor, weights: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns the features and the pre-activations of the hidden layers."""
        pre_activations = []
        for weight in weights[:-1]:
            h = F.conv2d(x, weight, padding=1)
            pre_activations.append(h)
            x = smoothed_relu(h, self.delta)
        return F.conv2d(x, weights[-1], padding=1), pre_activations

    def forward(self, *blocks: torch.Tensor) -> torch.Tensor:
        self._check_inputs(blocks)
        features, _ = self._forward_layers(complex_to_channels(list(blocks)), self.block_weights())
        return features

    def _check_inputs(self, blocks: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> None:
        if len(blocks) != self.in_channels:
            raise ValueError(f"g expects {self.in_channels} complex input images, got {len(blocks)}")

    def smoothed_value_and_grad(
        self, inputs: list[torch.Tensor], eps: torch.Tensor, need_grad: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """sum_i r_eps(g_i(x)) and its gradient J_g^T (g_i / max(||g_i||, eps)) by the hand-written backward."""
        self._check_inputs(inputs)
        weights = self.block_weights()
        features, pre_activations = self._forward_layers(complex_to_channels(list(inputs)), weights)
        value = smoothed_l21(features, eps)
        if not need_grad:
            return value, None
        grad = smoothed_l21_grad(features, eps)
        for weight, h in zip(reversed(weights[1:]), reversed(pre_activations)):
            grad = F.conv_transpose2d(grad, weight, padding=1) * smoothed_relu_derivative(h, self.delta)
        grad = F.conv_transpose2d(grad, weights[0], padding=1)
        return value, channels_to_complex(grad)
