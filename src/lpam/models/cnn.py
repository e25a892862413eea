"""The learned feature map g of LPAM-net (docs/method.md section 4): complex 3x3 convolutions, no bias,
in -> 32 -> 32 -> 32 -> 32, the smoothed ReLU s between layers on real and imaginary parts; optionally a
context branch of dilated layers on the first layer's activations, added to the output.

A complex convolution with weight A + iB on input p + iq is (A*p - B*q) + i(B*p + A*q). Holding the
real parts of all channels before the imaginary parts, it is one real convolution with the block weight
[[A, -B], [B, A]]: 4 real products per complex one, done by a single large (fast) real convolution.

J_g^T is written by hand (transposed convolutions with the same weights, times s'), so that
grad r_eps(g(x)) costs one forward and one backward pass; it is built from differentiable torch ops, so
training differentiates through it.

Padding: ``zeros`` (the authors') or ``circular``. The FFT of the data term is periodic, so with zero
padding the image border meets a boundary that the physics does not have; where the field of view cuts the
head (the embedded slices' last rows) that left a bright line in the error maps. Circular padding makes g
periodic like F. Its J^T is the transposed convolution without padding followed by the adjoint of the
circular padding (the wrapped border rows and columns added back onto the opposite edges).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lpam.algorithm.smoothing import smoothed_l21, smoothed_l21_grad, smoothed_relu, smoothed_relu_derivative
from lpam.options import is_whole_number

G_INITS = ("tv", "random")
PADDINGS = ("zeros", "circular")
KERNEL_HALF_WIDTH = 1  # 3x3 kernels


def circular_pad(x: torch.Tensor, width: int = KERNEL_HALF_WIDTH) -> torch.Tensor:
    """Periodic extension by ``width`` pixels on each side of the last two axes."""
    if 2 * width > min(x.shape[-2:]):  # a dilated layer reaching across the whole image
        return wrapping_circular_pad(x, width)
    return F.pad(x, (width,) * 4, mode="circular")


def circular_pad_adjoint(y: torch.Tensor, width: int = KERNEL_HALF_WIDTH) -> torch.Tensor:
    """Adjoint of :func:`circular_pad`: the centre plus the padded rows / columns wrapped onto the opposite edge."""
    p = width
    if 4 * p > min(y.shape[-2:]):  # the image is narrower than 2 p
        return wrapping_circular_pad_adjoint(y, width)
    y = torch.cat([y[..., p:2 * p, :] + y[..., -p:, :], y[..., 2 * p:-2 * p, :], y[..., -2 * p:-p, :] + y[..., :p, :]], -2)
    return torch.cat([y[..., p:2 * p] + y[..., -p:], y[..., 2 * p:-2 * p], y[..., -2 * p:-p] + y[..., :p]], -1)


def _wrapped_indices(size: int, width: int, device: torch.device) -> torch.Tensor:
    """Indices -width .. size + width - 1 taken modulo size (they may wrap more than once)."""
    return torch.arange(-width, size + width, device=device) % size


def wrapping_circular_pad(x: torch.Tensor, width: int) -> torch.Tensor:
    """:func:`circular_pad` for any width, by indexing (slower than torch's padding, which wraps once)."""
    rows = _wrapped_indices(x.shape[-2], width, x.device)
    columns = _wrapped_indices(x.shape[-1], width, x.device)
    return x.index_select(-2, rows).index_select(-1, columns)


def wrapping_circular_pad_adjoint(y: torch.Tensor, width: int) -> torch.Tensor:
    """Adjoint of :func:`wrapping_circular_pad`: every padded pixel added back onto the pixel it copies."""
    height, breadth = y.shape[-2] - 2 * width, y.shape[-1] - 2 * width
    rows = _wrapped_indices(height, width, y.device)
    columns = _wrapped_indices(breadth, width, y.device)
    y = y.new_zeros(*y.shape[:-2], height, y.shape[-1]).index_add(-2, rows, y)
    return y.new_zeros(*y.shape[:-2], height, breadth).index_add(-1, columns, y)


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


def checked_dilations(dilations: list[int] | tuple[int, ...] | None, layers: int, init: str) -> tuple[int, ...]:
    """One dilation per layer (None: all 1), each a whole number >= 1; the TV initialisation's +-D are
    differences of adjacent pixels, so it keeps the first layer at dilation 1."""
    if dilations is None:
        return (1,) * layers
    if (not isinstance(dilations, (list, tuple)) or len(dilations) != layers
            or not all(is_whole_number(d) for d in dilations)):
        raise ValueError(f"dilations must be {layers} whole numbers >= 1 (one per layer of g), got {dilations!r}")
    if init == "tv" and dilations[0] != 1:
        raise ValueError(f"g_init 'tv' needs dilation 1 in the first layer (its +-D compare adjacent pixels), "
                         f"got dilations {list(dilations)}")
    return tuple(dilations)


def checked_context_branch(dilations: list[int] | tuple[int, ...] | None, features: int) -> tuple[int, ...]:
    """The dilations of g's context branch, one per branch layer (None or empty: no branch), after checking
    them and the branch's channel count ``features``."""
    if not is_whole_number(features):
        raise ValueError(f"context_features must be a whole number >= 1, got {features!r}")
    if dilations is None:
        return ()
    if not isinstance(dilations, (list, tuple)) or not all(is_whole_number(d) for d in dilations):
        raise ValueError(f"context_dilations must be a list of whole numbers >= 1 (one per layer of g's context "
                         f"branch), got {dilations!r}")
    return tuple(dilations)


def xavier_pair(c_in: int, c_out: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Real and imaginary 3x3 weights (c_out, c_in, 3, 3), Xavier scale split over the two parts."""
    std = math.sqrt(2.0 / (9 * (c_in + c_out))) / math.sqrt(2)
    return nn.Parameter(torch.randn(c_out, c_in, 3, 3) * std), nn.Parameter(torch.randn(c_out, c_in, 3, 3) * std)


def block_weight(real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
    """The real block weight [[A, -B], [B, A]] of the complex weight A + iB."""
    return torch.cat([torch.cat([real, -imag], 1), torch.cat([imag, real], 1)], 0)


class ComplexCNN(nn.Module):
    """g(x_1..x_N): complex CNN on the stacked blocks, output real features (B, 2 * out_channels, H, W).

    ``out_channels`` defaults to ``features`` (no projection back, docs/method.md section 4). ``dilations``
    (one per layer, default all 1) spaces each layer's 3x3 taps d pixels apart: the same weights see
    1 + 2 sum(d) pixels across instead of 1 + 2 * layers. ``context_dilations`` adds a context branch:
    g(x) = main(x) + C_m(s(... s(C_1 a_1))), C_l dilated by the l-th entry, a_1 = s(W_1 x) the first layer's
    activations, ``context_features`` channels inside; its last layer starts at zero, so the branch starts
    silent (g, and a warm-started network, compute what they computed without it).
    """

    def __init__(
        self,
        in_channels: int,
        features: int = 32,
        layers: int = 4,
        delta: float = 0.01,
        init: str = "tv",
        out_channels: int | None = None,
        padding: str = "zeros",
        dilations: tuple[int, ...] | None = None,
        context_dilations: tuple[int, ...] | None = None,
        context_features: int = 16,
    ) -> None:
        super().__init__()
        if init not in G_INITS:
            raise ValueError(f"unknown initialisation {init!r} for g; choose one of {', '.join(G_INITS)}")
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r} for g; choose one of {', '.join(PADDINGS)}")
        self.padding = padding
        if layers < 2:
            raise ValueError(f"g needs at least 2 layers, got {layers}")
        self.dilations = checked_dilations(dilations, layers, init)
        self.in_channels, self.features, self.delta = in_channels, features, delta
        widths = [in_channels] + [features] * (layers - 1) + [out_channels or features]
        self.weight_real, self.weight_imag = self._layer_weights(widths)
        if init == "tv":
            self._init_as_tv()
        self.context_dilations = checked_context_branch(context_dilations, context_features)
        branch = len(self.context_dilations)
        context_widths = [features] + [context_features] * (branch - 1) + [out_channels or features] if branch else []
        self.context_real, self.context_imag = self._layer_weights(context_widths)
        if branch:
            with torch.no_grad():
                self.context_real[-1].zero_()
                self.context_imag[-1].zero_()

    @staticmethod
    def _layer_weights(widths: list[int]) -> tuple[nn.ParameterList, nn.ParameterList]:
        """Xavier-initialised real and imaginary weights of the layers widths[0] -> widths[1] -> ..."""
        pairs = [xavier_pair(c_in, c_out) for c_in, c_out in zip(widths[:-1], widths[1:])]
        return nn.ParameterList([p[0] for p in pairs]), nn.ParameterList([p[1] for p in pairs])

    @torch.no_grad()
    def _init_as_tv(self) -> None:
        """Unrolled joint TV (docs/method.md section 4): layer 1 = +-D, later layers identity on those channels,
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
        """Real block weights [[A, -B], [B, A]] of every layer of the main path."""
        return [block_weight(a, b) for a, b in zip(self.weight_real, self.weight_imag)]

    def context_block_weights(self) -> list[torch.Tensor]:
        """Real block weights of the context branch's layers (none without a branch)."""
        return [block_weight(a, b) for a, b in zip(self.context_real, self.context_imag)]

    def _forward_path(self, x: torch.Tensor, weights: list[torch.Tensor],
                      dilations: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Layers with s between them: the output and the pre-activations of the hidden layers."""
        pre_activations = []
        for weight, dilation in zip(weights[:-1], dilations):
            h = self._convolve(x, weight, dilation)
            pre_activations.append(h)
            x = smoothed_relu(h, self.delta)
        return self._convolve(x, weights[-1], dilations[-1]), pre_activations

    def _adjoint_path(self, grad: torch.Tensor, weights: list[torch.Tensor], dilations: tuple[int, ...],
                      pre_activations: list[torch.Tensor]) -> torch.Tensor:
        """J^T of :meth:`_forward_path` applied to ``grad`` (the gradient at its output)."""
        for weight, dilation, h in zip(reversed(weights[1:]), reversed(dilations[1:]), reversed(pre_activations)):
            grad = self._convolve_adjoint(grad, weight, dilation) * smoothed_relu_derivative(h, self.delta)
        return self._convolve_adjoint(grad, weights[0], dilations[0])

    def _forward_layers(self, x: torch.Tensor, weights: list[torch.Tensor],
                        context: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The features, the main path's hidden pre-activations and the context branch's; both paths start from
        the first layer's activations a_1."""
        first = self._convolve(x, weights[0], self.dilations[0])
        activations = smoothed_relu(first, self.delta)
        features, pre_activations = self._forward_path(activations, weights[1:], self.dilations[1:])
        if not context:
            return features, [first] + pre_activations, []
        extra, context_pre_activations = self._forward_path(activations, context, self.context_dilations)
        return features + extra, [first] + pre_activations, context_pre_activations

    def _convolve(self, x: torch.Tensor, weight: torch.Tensor, dilation: int) -> torch.Tensor:
        """The 3x3 convolution of one layer, its taps ``dilation`` pixels apart, output the size of ``x``."""
        width = KERNEL_HALF_WIDTH * dilation
        if self.padding == "circular":
            return F.conv2d(circular_pad(x, width), weight, dilation=dilation)
        return F.conv2d(x, weight, padding=width, dilation=dilation)

    def _convolve_adjoint(self, y: torch.Tensor, weight: torch.Tensor, dilation: int) -> torch.Tensor:
        """The adjoint of :meth:`_convolve` (a transposed convolution with the same weight)."""
        width = KERNEL_HALF_WIDTH * dilation
        if self.padding == "circular":
            return circular_pad_adjoint(F.conv_transpose2d(y, weight, dilation=dilation), width)
        return F.conv_transpose2d(y, weight, padding=width, dilation=dilation)

    def forward(self, *blocks: torch.Tensor) -> torch.Tensor:
        self._check_inputs(blocks)
        inputs = complex_to_channels(list(blocks))
        features, _, _ = self._forward_layers(inputs, self.block_weights(), self.context_block_weights())
        return features

    def _check_inputs(self, blocks: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> None:
        if len(blocks) != self.in_channels:
            raise ValueError(f"g expects {self.in_channels} complex input images, got {len(blocks)}")

    def smoothed_value_and_grad(
        self, inputs: list[torch.Tensor], eps: torch.Tensor, need_grad: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """sum_i r_eps(g_i(x)) and its gradient J_g^T (g_i / max(||g_i||, eps)) by the hand-written backward;
        the context branch's J^T joins the main path's at the first layer's activations."""
        self._check_inputs(inputs)
        weights, context = self.block_weights(), self.context_block_weights()
        features, pre_activations, context_pre = self._forward_layers(complex_to_channels(list(inputs)), weights,
                                                                      context)
        value = smoothed_l21(features, eps)
        if not need_grad:
            return value, None
        top = smoothed_l21_grad(features, eps)
        # layers 2..L, then the branch: the gradient at the first layer's activations
        grad = self._adjoint_path(top, weights[1:], self.dilations[1:], pre_activations[1:])
        if context:
            grad = grad + self._adjoint_path(top, context, self.context_dilations, context_pre)
        grad = grad * smoothed_relu_derivative(pre_activations[0], self.delta)
        return value, channels_to_complex(self._convolve_adjoint(grad, weights[0], self.dilations[0]))
