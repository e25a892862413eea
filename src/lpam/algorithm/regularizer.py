"""Smoothed group-sparsity regularisers R_eps(x) = sum_t w_t sum_i r_eps_t(g_t(x_{S_t})_i) (docs/method.md 1-2).

A regulariser is a list of terms. Each term has a feature map g_t that reads a subset S_t of the blocks
and returns features of shape (B, d, *spatial), grouped per spatial position by the 2,1 norm. The couplings
of docs/method.md section 1 are term lists: ``joint`` is one term over all blocks, ``separate`` / ``shared`` one
term per block (with different or identical feature maps).

A feature map may provide a hand-written ``smoothed_value_and_grad(inputs, eps, need_grad)`` (value and
J_g^T grad r_eps, e.g. a CNN with its transposed convolutions); otherwise autograd supplies J_g^T.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from lpam.algorithm.smoothing import smoothed_l21, smoothed_l21_grad

Blocks = list[torch.Tensor]  # the images x_1..x_N, one tensor (B, ...) per block
FeatureMap = Callable[..., torch.Tensor]


@dataclass
class Term:
    """One term w * sum_i r_eps(g(x_S)_i): ``feature_map`` takes the blocks listed in ``blocks``."""

    feature_map: FeatureMap
    blocks: tuple[int, ...]
    weight: float | torch.Tensor = 1.0  # a tensor when the weight is learned (LPAM-net's descent rule)


def autograd_smoothed_value_and_grad(
    feature_map: FeatureMap, inputs: Blocks, eps: torch.Tensor, need_grad: bool = True
) -> tuple[torch.Tensor, Blocks | None]:
    """sum_i r_eps(g_i) and J_g^T grad r_eps by autograd.

    When the caller records a graph (training through the solver), the gradient keeps its own graph
    (create_graph) so that it can be differentiated again.
    """
    if not need_grad:
        return smoothed_l21(feature_map(*inputs), eps), None
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        leaves = [x if x.requires_grad else x.detach().requires_grad_(True) for x in inputs]
        features = feature_map(*leaves)
        value = smoothed_l21(features, eps)
        grads = torch.autograd.grad(
            features, leaves, smoothed_l21_grad(features, eps), create_graph=create_graph, allow_unused=True
        )
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]
    if not create_graph:
        value = value.detach()
        grads = [g.detach() for g in grads]
    return value, grads


class Regularizer:
    """R_eps = sum over ``terms``; ``eps`` always has shape (B, number of terms)."""

    def __init__(self, terms: Sequence[Term]) -> None:
        if not terms:
            raise ValueError("a regulariser needs at least one term")
        self.terms = list(terms)

    @property
    def num_terms(self) -> int:
        return len(self.terms)

    def _evaluate(
        self, term_index: int, blocks: Blocks, eps: torch.Tensor, need_grad: bool
    ) -> tuple[torch.Tensor, Blocks | None]:
        term = self.terms[term_index]
        inputs = [blocks[j] for j in term.blocks]
        hand_written = getattr(term.feature_map, "smoothed_value_and_grad", None)
        if hand_written is not None:
            value, grads = hand_written(inputs, eps[:, term_index], need_grad)
        else:
            value, grads = autograd_smoothed_value_and_grad(term.feature_map, inputs, eps[:, term_index], need_grad)
        if grads is not None and (torch.is_tensor(term.weight) or term.weight != 1.0):
            grads = [term.weight * g for g in grads]
        return term.weight * value, grads

    def value(self, blocks: Blocks, eps: torch.Tensor) -> torch.Tensor:
        """R_eps(x) per sample, shape (B,)."""
        return sum(self._evaluate(t, blocks, eps, need_grad=False)[0] for t in range(self.num_terms))

    def grad(self, blocks: Blocks, eps: torch.Tensor, block: int) -> torch.Tensor:
        """grad_{x_block} R_eps(x): only the terms that read ``block`` are evaluated."""
        total = torch.zeros_like(blocks[block])
        for t, term in enumerate(self.terms):
            if block in term.blocks:
                _, grads = self._evaluate(t, blocks, eps, need_grad=True)
                total = total + grads[term.blocks.index(block)]
        return total

    def value_and_grads(self, blocks: Blocks, eps: torch.Tensor) -> tuple[torch.Tensor, Blocks]:
        """R_eps(x) and its gradient with respect to every block."""
        value = torch.zeros(blocks[0].shape[0], dtype=blocks[0].real.dtype, device=blocks[0].device)
        grads = [torch.zeros_like(x) for x in blocks]
        for t, term in enumerate(self.terms):
            term_value, term_grads = self._evaluate(t, blocks, eps, need_grad=True)
            value = value + term_value
            for j, g in zip(term.blocks, term_grads):
                grads[j] = grads[j] + g
        return value, grads
