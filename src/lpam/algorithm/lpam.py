"""The LPAM iteration (docs/method.md section 3), generic: N >= 2 blocks, no knowledge of MRI.

Phi_eps(x_1..x_N) = sum_j f_j(x_j) + R_eps(x). One iteration, with per-sample decisions in a batch:

1. residual candidates in Gauss-Seidel order, for j = 1..N:
       z_j = x_j - alpha_j grad f_j(x_j),  u_j = z_j - tau_j grad_j R_eps(u_<j, z_j, x_>j);
2. accept u when (a) ||grad Phi_eps(x^k)|| <= a ||u - x^k|| and
   (b) Phi_eps(u) - Phi_eps(x^k) <= -(1/a) ||u - x^k||^2   (condition (a) is evaluated at x^k, as the
   authors' code does; docs/method.md section 7); with ``learned_backtracks`` = m > 0, a rejected u is
   recomputed with its step sizes halved, up to m times, and the first halved candidate that passes the same
   test is accepted (docs/method.md section 4b; m = 0 is the published algorithm);
3. otherwise the safeguard v_j = x_j - abar_j grad_j Phi_eps(v_<j, x_j, x_>j), with abar_j <- rho abar_j
   while Phi_eps(v) - Phi_eps(x^k) > -(1/c) ||v - x^k||^2 (at most ``max_backtracks`` shrinks; when that
   fails the sample keeps x^k and the failure is recorded);
4. eps_{k+1} = gamma eps_k when ||grad Phi_eps_k(x^{k+1})|| < sigma gamma eps_k, else eps_k;
5. a sample stops when sigma eps_k < tol (or after the iteration budget of :func:`solve`).

Everything is written with torch ops (``torch.where`` for the decisions), so the same iteration is
differentiable and serves as a phase of LPAM-net.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from lpam.algorithm.regularizer import Blocks, Regularizer
from lpam.algorithm.smoothing import squared_norms

Scalar = float | torch.Tensor
LEARNED_STEP_SHRINK = 0.5  # a rejected residual candidate retries with its step sizes times this (m times at most)


@dataclass
class SmoothFunction:
    """A smooth term f_j: ``value(x)`` per sample (B,), ``grad(x)``, optionally both at once (sharing A x - y)."""

    value: Callable[[torch.Tensor], torch.Tensor]
    grad: Callable[[torch.Tensor], torch.Tensor]
    value_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None

    def value_and_gradient(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.value_and_grad(x) if self.value_and_grad is not None else (self.value(x), self.grad(x))


class Objective:
    """Phi_eps(x) = sum_j f_j(x_j) + R_eps(x) for N blocks."""

    def __init__(self, smooth: Sequence[SmoothFunction], regularizer: Regularizer) -> None:
        if len(smooth) < 2:
            raise ValueError(f"LPAM needs at least 2 blocks, got {len(smooth)} smooth terms")
        self.smooth = list(smooth)
        self.regularizer = regularizer

    @property
    def num_blocks(self) -> int:
        return len(self.smooth)

    def value(self, blocks: Blocks, eps: torch.Tensor) -> torch.Tensor:
        return sum(f.value(x) for f, x in zip(self.smooth, blocks)) + self.regularizer.value(blocks, eps)

    def value_and_grads(self, blocks: Blocks, eps: torch.Tensor) -> tuple[torch.Tensor, Blocks]:
        reg_value, reg_grads = self.regularizer.value_and_grads(blocks, eps)
        data = [f.value_and_gradient(x) for f, x in zip(self.smooth, blocks)]
        return reg_value + sum(v for v, _ in data), [grad + g for (_, grad), g in zip(data, reg_grads)]

    def block_grad(self, blocks: Blocks, eps: torch.Tensor, block: int) -> torch.Tensor:
        """grad_{x_block} Phi_eps(x)."""
        return self.smooth[block].grad(blocks[block]) + self.regularizer.grad(blocks, eps, block)


@dataclass
class StepSizes:
    """Per-block step sizes: alpha (data step), tau (residual step), abar (safeguard step)."""

    alpha: Sequence[Scalar]
    tau: Sequence[Scalar]
    abar: Sequence[Scalar]

    @classmethod
    def constant(cls, num_blocks: int, alpha: float, tau: float, abar: float) -> "StepSizes":
        return cls([alpha] * num_blocks, [tau] * num_blocks, [abar] * num_blocks)

    def shrunk(self, factor: float) -> "StepSizes":
        """The residual step with alpha and tau multiplied by ``factor`` (abar unchanged)."""
        return StepSizes([factor * a for a in self.alpha], [factor * t for t in self.tau], list(self.abar))


@dataclass
class Constants:
    """Constants of docs/method.md section 3 (defaults chosen for the orthonormal FFT scaling, docs/method.md 7)."""

    a: float = 1e2
    c: float = 1e4
    sigma: float = 10.0
    gamma: float = 0.9
    rho: float = 0.9
    max_backtracks: int = 40
    tol: float = 1e-5
    learned_backtracks: int = 0  # halvings of a rejected residual candidate's steps before the safeguard

    def __post_init__(self) -> None:
        for name in ("a", "c", "sigma", "tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"constant {name} must be positive, got {getattr(self, name)}")
        for name in ("gamma", "rho"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"constant {name} must lie in (0, 1), got {getattr(self, name)}")
        for name in ("max_backtracks", "learned_backtracks"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")


@dataclass
class State:
    """Iterate, per-sample per-term eps (B, T), and Phi_eps / grad Phi_eps at the iterate when known."""

    blocks: Blocks
    eps: torch.Tensor
    done: torch.Tensor
    cached: tuple[torch.Tensor, Blocks] | None = None
    violation: torch.Tensor | float = 0.0  # sum over iterations of :func:`descent_violation` (training)


@dataclass
class Record:
    """What one iteration did, per sample: Phi_eps_k(x^{k+1}), ||grad Phi_eps_k(x^{k+1})||, eps_k, ..."""

    phi: torch.Tensor
    grad_norm: torch.Tensor
    eps: torch.Tensor
    accepted: torch.Tensor
    backtracks: torch.Tensor
    failed: torch.Tensor


KEYS = ("phi", "grad_norm", "eps", "branch", "backtracks", "failed")


@dataclass
class History:
    """Per-sample lists, one entry per iteration (the schema of history.json, docs/method.md section 7)."""

    phi: list[list[float]] = field(default_factory=list)
    grad_norm: list[list[float]] = field(default_factory=list)
    eps: list[list[float]] = field(default_factory=list)
    branch: list[list[str]] = field(default_factory=list)
    backtracks: list[list[int]] = field(default_factory=list)
    failed: list[list[bool]] = field(default_factory=list)

    def append(self, record: Record) -> None:
        rows = {
            "phi": record.phi.detach().double().tolist(),
            "grad_norm": record.grad_norm.detach().double().tolist(),
            "eps": record.eps.detach().double().tolist(),
            "branch": ["residual" if a else "safeguard" for a in record.accepted.tolist()],
            "backtracks": record.backtracks.tolist(),
            "failed": record.failed.tolist(),
        }
        for key, values in rows.items():
            table = getattr(self, key)
            if not table:
                table.extend([] for _ in values)
            for sample, value in zip(table, values):
                sample.append(value)

    def add_samples(self, other: "History") -> None:
        """Append the samples of ``other`` (e.g. a history recorded for another batch)."""
        for key in KEYS:
            getattr(self, key).extend(getattr(other, key))

    def per_sample(self, index: int) -> dict[str, list]:
        return {key: getattr(self, key)[index] for key in KEYS}


def squared_distance(u: Blocks, x: Blocks) -> torch.Tensor:
    """||u - x||^2 over all blocks, per sample."""
    return sum(squared_norms(a - b) for a, b in zip(u, x))


def gradient_norm(grads: Blocks) -> torch.Tensor:
    """||grad Phi|| over all blocks, per sample."""
    return sum(squared_norms(g) for g in grads).sqrt()


def _expand(per_sample: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return per_sample.reshape(-1, *([1] * (like.ndim - 1)))


def _select(condition: torch.Tensor, if_true: Blocks, if_false: Blocks) -> Blocks:
    return [torch.where(_expand(condition, a), a, b) for a, b in zip(if_true, if_false)]


def check_finite(blocks: Blocks, what: str) -> None:
    """Raise a clear error instead of carrying NaN or inf through the iteration."""
    for j, x in enumerate(blocks):
        if not torch.isfinite(torch.view_as_real(x) if x.is_complex() else x).all():
            raise FloatingPointError(f"{what}: block {j} contains NaN or infinite values")


def _evaluate_detached(objective: Objective, blocks: Blocks, eps: torch.Tensor) -> tuple[torch.Tensor, Blocks]:
    """Phi_eps and grad Phi_eps without an autograd graph: the tests, the eps rule and the record only read
    them (the safeguard rebuilds the graph it needs)."""
    with torch.no_grad():
        return objective.value_and_grads([b.detach() for b in blocks], eps.detach())


def residual_candidate(objective: Objective, state: State, steps: StepSizes) -> Blocks:
    """Step 1 of docs/method.md section 3, Gauss-Seidel over the blocks."""
    x = state.blocks
    u = list(x)
    for j in range(objective.num_blocks):
        z = x[j] - steps.alpha[j] * objective.smooth[j].grad(x[j])
        u[j] = z
        u[j] = z - steps.tau[j] * objective.regularizer.grad(u, state.eps, j)
    return u


def _passes_test(objective: Objective, state: State, u: Blocks, phi_x: torch.Tensor, grads_x: Blocks,
                 a: float) -> tuple[torch.Tensor, tuple[torch.Tensor, Blocks]]:
    """Conditions (a) and (b) of step 2 per sample, and (Phi_eps, grad Phi_eps) at u."""
    phi_u, grads_u = _evaluate_detached(objective, u, state.eps)
    with torch.no_grad():
        step_sq = squared_distance(u, state.blocks)
        passed = (gradient_norm(grads_x) <= a * step_sq.sqrt()) & (phi_u - phi_x <= -step_sq / a)
    return passed, (phi_u, grads_u)


def accepted_residual(objective: Objective, state: State, steps: StepSizes, constants: Constants, u: Blocks,
                      phi_x: torch.Tensor, grads_x: Blocks) -> tuple[Blocks, torch.Tensor, torch.Tensor, tuple]:
    """Step 2: the test on u; samples that fail retry with the residual step sizes times
    LEARNED_STEP_SHRINK^t, t = 1..``learned_backtracks``. Returns (candidate per sample, accepted, halvings,
    (Phi_eps, grad Phi_eps) at the candidate)."""
    accepted, (phi_u, grads_u) = _passes_test(objective, state, u, phi_x, grads_x, constants.a)
    halvings = torch.zeros_like(accepted, dtype=torch.long)
    for t in range(1, constants.learned_backtracks + 1):
        if accepted.all():
            break
        shorter = residual_candidate(objective, state, steps.shrunk(LEARNED_STEP_SHRINK**t))
        passed, (phi_s, grads_s) = _passes_test(objective, state, shorter, phi_x, grads_x, constants.a)
        newly = passed & ~accepted
        u = _select(newly, shorter, u)
        phi_u = torch.where(newly, phi_s, phi_u)
        grads_u = [torch.where(_expand(newly, g), gs, g) for g, gs in zip(grads_u, grads_s)]
        halvings = torch.where(newly, t, halvings)
        accepted = accepted | newly
    return u, accepted, halvings, (phi_u, grads_u)


def safeguard_step(
    objective: Objective,
    state: State,
    steps: StepSizes,
    constants: Constants,
    phi_x: torch.Tensor,
    grads_x: Blocks,
    active: torch.Tensor,
) -> tuple[Blocks, torch.Tensor, torch.Tensor]:
    """Block gradient step with backtracking for the samples in ``active``; returns v, shrinks, failures.

    The backtracking search runs without autograd; when training, the accepted step is then recomputed once
    with its graph (the shrink factors are decisions), so that g and abar are trained through this branch
    at the cost of one step, not one per shrink."""
    x = state.blocks
    batch = x[0].shape[0]
    shrink = torch.ones(batch, dtype=phi_x.dtype, device=phi_x.device)
    backtracks = torch.zeros(batch, dtype=torch.long, device=phi_x.device)

    def step(scale: torch.Tensor, first_grad: torch.Tensor) -> Blocks:
        v = list(x)
        for j in range(objective.num_blocks):
            grad = first_grad if j == 0 else objective.block_grad(v, state.eps, j)
            v[j] = x[j] - _expand(scale, x[j]) * steps.abar[j] * grad
        return v

    with torch.no_grad():
        v = step(shrink, grads_x[0])
        for _ in range(constants.max_backtracks + 1):
            decrease = objective.value(v, state.eps) - phi_x
            insufficient = active & (decrease > -squared_distance(v, x) / constants.c)
            if not insufficient.any() or int(backtracks.max()) >= constants.max_backtracks:
                break
            shrink = torch.where(insufficient, shrink * constants.rho, shrink)
            backtracks = backtracks + insufficient.long()
            v = _select(insufficient, step(shrink, grads_x[0]), v)
    if torch.is_grad_enabled():  # grads_x carry no graph: rebuild the chosen step with one
        v = step(shrink, objective.block_grad(x, state.eps, 0))
    failed = insufficient
    return _select(failed, x, v), backtracks, failed


def descent_violation(objective: Objective, x: Blocks, u: Blocks, eps: torch.Tensor, a: float) -> torch.Tensor:
    """relu((Phi_eps(u) - Phi_eps(x)) / ||u - x||^2 + 1/a) per sample, with its autograd graph: zero exactly
    when the candidate meets the sufficient decrease of the acceptance test, so that training can push
    rejected learned steps towards acceptance (the test itself is a decision and passes no gradient)."""
    step_sq = squared_distance(u, x).detach().clamp_min(torch.finfo(eps.dtype).tiny)
    return torch.relu((objective.value(u, eps) - objective.value(x, eps)) / step_sq + 1 / a)


def lpam_iteration(
    objective: Objective,
    state: State,
    steps: StepSizes,
    constants: Constants,
    safeguard: bool = True,
    eps_decay: bool = True,
    record: bool = True,
    measure_violation: bool = False,
) -> tuple[State, Record | None]:
    """One LPAM iteration (docs/method.md section 3). ``safeguard=False`` always takes the residual candidate;
    ``measure_violation`` adds :func:`descent_violation` of the candidate to the state's ``violation``."""
    x = state.blocks
    batch = x[0].shape[0]
    u = residual_candidate(objective, state, steps)
    violation = state.violation
    if measure_violation:
        violation = violation + descent_violation(objective, x, u, state.eps, constants.a)
    accepted = torch.ones(batch, dtype=torch.bool, device=x[0].device)
    backtracks = torch.zeros(batch, dtype=torch.long, device=x[0].device)
    failed = torch.zeros_like(accepted)
    new_blocks, at_new = u, None  # at_new: (Phi_eps, grad Phi_eps) at x^{k+1} when already evaluated
    if safeguard:
        phi_x, grads_x = state.cached if state.cached is not None else _evaluate_detached(objective, x, state.eps)
        u, accepted, backtracks, at_new = accepted_residual(objective, state, steps, constants, u, phi_x, grads_x)
        new_blocks = u
        if not accepted.all():
            v, shrinks, failed = safeguard_step(objective, state, steps, constants, phi_x, grads_x, ~accepted)
            new_blocks, at_new = _select(accepted, u, v), None
            backtracks = torch.where(accepted, backtracks, shrinks)
    if state.done.any():
        new_blocks, at_new = _select(state.done, x, new_blocks), None
    check_finite([b.detach() for b in new_blocks], "LPAM iterate (try smaller step sizes)")

    eps = state.eps
    cached = None
    phi_new = grad_norm = None
    if eps_decay or record or safeguard:
        phi_new, grads_new = at_new if at_new is not None else _evaluate_detached(objective, new_blocks, eps)
        grad_norm = gradient_norm(grads_new)
        if not torch.isfinite(phi_new.detach()).all():
            raise FloatingPointError("Phi_eps is not finite at the new iterate")
        cached = (phi_new, grads_new)
    if eps_decay:
        reduce = (grad_norm.detach() < constants.sigma * constants.gamma * eps.detach().amax(1)) & ~state.done
        if reduce.any():
            eps = torch.where(reduce[:, None], constants.gamma * eps, eps)
            cached = None
    done = state.done | (constants.sigma * eps.detach().amax(1) < constants.tol)
    rec = None
    if record:
        rec = Record(phi_new.detach(), grad_norm.detach(), state.eps.detach().amax(1), accepted, backtracks, failed)
    return State(new_blocks, eps, done, cached, violation), rec


def initial_state(blocks: Sequence[torch.Tensor], eps0: Scalar | Sequence[Scalar], num_terms: int) -> State:
    """State at x^0 with eps_0 (a scalar, or one value per regulariser term), checking the input."""
    blocks = list(blocks)
    if len(blocks) < 2:
        raise ValueError(f"LPAM needs at least 2 blocks, got {len(blocks)}")
    batch = blocks[0].shape[0]
    for j, x in enumerate(blocks):
        if x.shape[0] != batch:
            raise ValueError(f"block {j} has batch size {x.shape[0]}, block 0 has {batch}")
    check_finite(blocks, "initial point")
    eps = torch.as_tensor(eps0, dtype=blocks[0].real.dtype, device=blocks[0].device)
    eps = eps.reshape(1, -1).expand(batch, num_terms).clone() if eps.ndim <= 1 else eps
    if eps.shape != (batch, num_terms):
        raise ValueError(f"eps0 must be a scalar or have {num_terms} entries (one per regulariser term)")
    if not (eps > 0).all():
        raise ValueError("eps0 must be positive")
    return State(blocks, eps, torch.zeros(batch, dtype=torch.bool, device=blocks[0].device))


def solve(
    objective: Objective,
    x0: Sequence[torch.Tensor],
    steps: StepSizes,
    eps0: Scalar | Sequence[Scalar],
    constants: Constants | None = None,
    max_iterations: int = 300,
    safeguard: bool = True,
    eps_decay: bool = True,
    progress: Callable[[int, State], None] | None = None,
) -> tuple[Blocks, History]:
    """Run LPAM from x0 until every sample stops (sigma eps < tol) or ``max_iterations``; no autograd."""
    constants = constants or Constants()
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
    state = initial_state(x0, eps0, objective.regularizer.num_terms)
    history = History()
    with torch.no_grad():
        for k in range(max_iterations):
            state, record = lpam_iteration(objective, state, steps, constants, safeguard, eps_decay, record=True)
            history.append(record)
            if progress is not None:
                progress(k, state)
            if state.done.all():
                break
    return state.blocks, history
