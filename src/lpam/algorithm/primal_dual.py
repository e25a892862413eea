"""The Condat-Vu primal-dual algorithm (docs/method.md section 7), generic: blocks, no knowledge of MRI or TV.

It minimises F(x) = sum_j f_j(x_j) + g(K x) over blocks x = (x_1..x_n), f_j smooth with L-Lipschitz
gradients, g convex with an easy prox of its conjugate, K linear (blocks -> one dual tensor):

    x^{k+1} = x^k - t (grad f(x^k) + K^T p^k)
    p^{k+1} = prox_{s g*}(p^k + s K (2 x^{k+1} - x^k)),

which converges (Condat 2013, Vu 2013) when 1/t - s ||K||^2 >= L/2. The steps are t = 1.5 / L and
s = 0.99 (1/t - L/2) / ||K||^2. For g = lam ||.|| (a norm), prox_{s g*} is the projection onto the dual-norm
ball of radius lam, whatever s. K x^{k+1} is kept, so K runs once per iteration and g(K x^{k+1}) is free;
f and grad f at x^{k+1} are computed together (one A x per block) and the gradient is the next step's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from lpam.algorithm.lpam import SmoothFunction, check_finite
from lpam.algorithm.regularizer import Blocks
from lpam.algorithm.smoothing import squared_norms

PRIMAL_STEP_FACTOR = 1.5  # t = 1.5 / L (any t < 2 / L converges; larger t leaves a smaller dual step)
DUAL_STEP_SAFETY = 0.99  # s is 0.99 of the largest step the condition 1/t - s ||K||^2 >= L/2 allows
HISTORY_KEYS = ("objective", "primal_change", "dual_change")


@dataclass
class PrimalDualProblem:
    """min_x sum_j f_j(x_j) + g(K x): the smooth terms, K and K^T, a bound on ||K||^2, prox_{s g*} as
    ``prox_dual(p, s)`` and g's value per sample (exact, for the history); ``lipschitz``: L of grad f."""

    smooth: Sequence[SmoothFunction]
    operator: Callable[[Blocks], torch.Tensor]
    adjoint: Callable[[torch.Tensor], Blocks]
    operator_norm_squared: float
    prox_dual: Callable[[torch.Tensor, float], torch.Tensor]
    g_value: Callable[[torch.Tensor], torch.Tensor]
    lipschitz: float = 1.0


@dataclass
class PrimalDualHistory:
    """Per-sample lists, one entry per iteration: ``objective`` F(x^{k+1}) (g exact, not smoothed),
    ``primal_change`` ||x^{k+1} - x^k|| and ``dual_change`` ||p^{k+1} - p^k|| (both tend to 0 at a fixed
    point). The schema of history.json for this solver (docs/method.md section 7)."""

    objective: list[list[float]] = field(default_factory=list)
    primal_change: list[list[float]] = field(default_factory=list)
    dual_change: list[list[float]] = field(default_factory=list)

    def append(self, objective: torch.Tensor, primal_change: torch.Tensor, dual_change: torch.Tensor) -> None:
        for key, values in zip(HISTORY_KEYS, (objective, primal_change, dual_change)):
            table = getattr(self, key)
            rows = values.detach().double().tolist()
            if not table:
                table.extend([] for _ in rows)
            for sample, value in zip(table, rows):
                sample.append(value)

    def per_sample(self, index: int) -> dict[str, list]:
        return {key: getattr(self, key)[index] for key in HISTORY_KEYS}


def step_sizes(lipschitz: float, operator_norm_squared: float,
               primal_factor: float = PRIMAL_STEP_FACTOR) -> tuple[float, float]:
    """(t, s): t = primal_factor / L, s = 0.99 (1/t - L/2) / ||K||^2; primal_factor must lie in (0, 2)."""
    if not lipschitz > 0 or not operator_norm_squared > 0:
        raise ValueError(f"L and ||K||^2 must be positive, got {lipschitz} and {operator_norm_squared}")
    if not 0 < primal_factor < 2:
        raise ValueError(f"the primal step t = factor / L needs a factor in (0, 2), got {primal_factor}")
    primal = primal_factor / lipschitz
    return primal, DUAL_STEP_SAFETY * (1 / primal - lipschitz / 2) / operator_norm_squared


def smooth_values_and_grads(problem: PrimalDualProblem, blocks: Blocks) -> tuple[torch.Tensor, Blocks]:
    """(sum_j f_j(x_j) per sample, [grad f_j(x_j)]): both at once, so each f_j's operator runs once per
    iteration for the history's F(x^{k+1}) and the next step's gradient."""
    pairs = [f.value_and_gradient(x) for f, x in zip(problem.smooth, blocks)]
    return sum(value for value, _ in pairs), [grad for _, grad in pairs]


def solve_primal_dual(
    problem: PrimalDualProblem,
    x0: Sequence[torch.Tensor],
    iterations: int = 1000,
    progress: Callable[[int, Blocks], None] | None = None,
    primal_factor: float = PRIMAL_STEP_FACTOR,
) -> tuple[Blocks, PrimalDualHistory]:
    """Run ``iterations`` Condat-Vu iterations from x0 (dual p^0 = 0); no autograd. Returns the blocks and the
    history; ``progress(k, blocks)`` is called after iteration k."""
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if len(x0) != len(problem.smooth):
        raise ValueError(f"{len(x0)} blocks for {len(problem.smooth)} smooth terms")
    primal, dual_step = step_sizes(problem.lipschitz, problem.operator_norm_squared, primal_factor)
    x = list(x0)
    check_finite(x, "initial point")
    history = PrimalDualHistory()
    with torch.no_grad():
        features = problem.operator(x)
        dual = torch.zeros_like(features)
        _, grads = smooth_values_and_grads(problem, x)
        for k in range(iterations):
            pulled = problem.adjoint(dual)
            new = [b - primal * (g + q) for b, g, q in zip(x, grads, pulled)]
            check_finite(new, "primal-dual iterate (is L a bound on the Lipschitz constant of grad f?)")
            new_features = problem.operator(new)
            new_dual = problem.prox_dual(dual + dual_step * (2 * new_features - features), dual_step)
            smooth_value, grads = smooth_values_and_grads(problem, new)  # the next iteration's gradient too
            history.append(smooth_value + problem.g_value(new_features),
                           sum(squared_norms(a - b) for a, b in zip(new, x)).sqrt(),
                           squared_norms(new_dual - dual).sqrt())
            x, features, dual = new, new_features, new_dual
            if progress is not None:
                progress(k, x)
    return x, history
