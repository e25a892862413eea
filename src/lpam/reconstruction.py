"""Reconstruction with classical (non-learned) solvers of the joint or separate TV model (docs/method.md
sections 1, 3, 7): LPAM with the smoothed TV (the paper's algorithm, the default) or the Condat-Vu
primal-dual algorithm on the exact TV (the TV model solved to convergence)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from lpam.algorithm.lpam import Constants, History, State, StepSizes, solve
from lpam.algorithm.primal_dual import PrimalDualHistory, PrimalDualProblem, solve_primal_dual
from lpam.physics.mri import SOLVER_DTYPES, ContrastPhysics
from lpam.problem import data_terms, mri_objective
from lpam.regularizers.tv import (DIFFERENCES_NORM_SQUARED, FiniteDifferences, check_tv_options, feature_sizes,
                                  project_dual, total_variation, tv_value)

PRECISIONS = {"complex64": torch.complex64, "complex128": torch.complex128}
# iterations by solver: LPAM's 300 settle the joint-TV baseline; primal-dual converges in 500-1000 (README)
SOLVER_ITERATIONS = {"lpam": 300, "primal-dual": 1000}
SOLVERS = tuple(SOLVER_ITERATIONS)
SOLVER_NAMES = {"lpam": "LPAM", "primal-dual": "primal-dual"}  # in progress bars and figure titles
DATA_LIPSCHITZ = 1.0  # L of grad f = ||A||^2 <= 1 for our physics (the assumption behind alpha = 1 too)


def check_solver(solver: str) -> str:
    """``solver`` if it is one of :data:`SOLVERS`, else a ValueError listing them."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown TV solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    return solver


@dataclass
class TVSettings:
    """R = lam * TV solved by ``solver``: "lpam" (classical LPAM on the smoothed TV) or "primal-dual" (Condat-Vu
    on the exact TV, lpam.algorithm.primal_dual; it ignores eps0, alpha, tau, abar, safeguard, eps_decay and
    constants, its steps follow from L = 1 and ||D||^2 <= 8). ``iterations``: default by solver
    (:data:`SOLVER_ITERATIONS`: 300 for LPAM, 1000 for primal-dual).

    LPAM steps: alpha = 1 (||A|| <= 1), tau = eps0 / (8 lam) (1 / Lipschitz constant of grad R_eps at eps0,
    since ||D||^2 <= 8), abar = 1 with backtracking. ``precision``: complex64 (default, fast) or
    complex128; the README reports the difference in PSNR (< 0.01 dB).

    Defaults tuned on the validation slab at 20% radial (README): lam = 0.006, eps0 = 0.05, sigma = 10."""

    lam: float = 0.006
    coupling: str = "joint"
    iterations: int | None = None
    eps0: float = 0.05
    alpha: float = 1.0
    tau: float | None = None
    abar: float = 1.0
    safeguard: bool = True
    eps_decay: bool = True
    constants: Constants = field(default_factory=lambda: Constants(rho=0.5))
    precision: str = "complex64"
    boundary: str = "zero"  # TV's boundary, one of lpam.regularizers.tv.BOUNDARIES ("zero": the published code)
    solver: str = "lpam"

    def __post_init__(self) -> None:
        check_solver(self.solver)
        if self.iterations is None:
            self.iterations = SOLVER_ITERATIONS[self.solver]

    def step_sizes(self, num_blocks: int) -> StepSizes:
        tau = self.eps0 / (8 * self.lam) if self.tau is None else self.tau
        return StepSizes.constant(num_blocks, self.alpha, tau, self.abar)


TVHistory = History | PrimalDualHistory


def _solve_lpam(kspace: torch.Tensor, physics: ContrastPhysics, settings: TVSettings,
                x0: list[torch.Tensor], bar: tqdm) -> tuple[list[torch.Tensor], History]:
    """Classical LPAM on Phi_eps = sum_j f_j + lam TV_eps (docs/method.md section 3)."""
    objective = mri_objective(kspace, physics, total_variation(kspace.shape[1], settings.lam, settings.coupling,
                                                               settings.boundary))

    def report(k: int, state: State) -> None:
        bar.update(1)
        bar.set_postfix(eps=f"{float(state.eps.max()):.2e}")

    return solve(objective, x0, settings.step_sizes(len(x0)), settings.eps0, settings.constants,
                 settings.iterations, settings.safeguard, settings.eps_decay, progress=report)


def tv_problem(kspace: torch.Tensor, physics: ContrastPhysics, settings: TVSettings,
               like: list[torch.Tensor]) -> PrimalDualProblem:
    """sum_j 1/2 ||A_j x_j - y_j||^2 + lam TV(x) as min f(x) + g(D x) (``like``: blocks shaped as the images)."""
    check_tv_options(settings.lam, settings.coupling)
    differences, sizes = FiniteDifferences(settings.boundary), feature_sizes(like)
    return PrimalDualProblem(
        smooth=data_terms(physics, kspace),
        operator=lambda blocks: differences(*blocks),
        adjoint=lambda features: differences.adjoint(features, like),
        operator_norm_squared=DIFFERENCES_NORM_SQUARED,
        prox_dual=lambda features, _step: project_dual(features, settings.lam, sizes, settings.coupling),
        g_value=lambda features: tv_value(features, settings.lam, sizes, settings.coupling),
        lipschitz=DATA_LIPSCHITZ,
    )


def _solve_primal_dual(kspace: torch.Tensor, physics: ContrastPhysics, settings: TVSettings,
                       x0: list[torch.Tensor], bar: tqdm) -> tuple[list[torch.Tensor], PrimalDualHistory]:
    """Condat-Vu on the exact TV model (lpam.algorithm.primal_dual)."""
    return solve_primal_dual(tv_problem(kspace, physics, settings, x0), x0, settings.iterations,
                             progress=lambda k, blocks: bar.update(1))


SOLVER_FUNCTIONS = {"lpam": _solve_lpam, "primal-dual": _solve_primal_dual}


def reconstruct_tv(
    kspace: torch.Tensor, physics: ContrastPhysics, settings: TVSettings | None = None, progress: bool = False
) -> tuple[torch.Tensor, TVHistory]:
    """Joint / separate TV reconstruction of the measurements of ``physics`` (single- or multi-coil, Cartesian or
    radial) by ``settings.solver``; returns complex images (B, C, H, W) and the solver's history
    (:class:`~lpam.algorithm.lpam.History` or :class:`~lpam.algorithm.primal_dual.PrimalDualHistory`)."""
    settings = settings or TVSettings()
    run = SOLVER_FUNCTIONS[check_solver(settings.solver)]
    physics.check(kspace, SOLVER_DTYPES)
    if settings.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {settings.precision!r}; choose one of {', '.join(PRECISIONS)}")
    kspace_c = kspace.to(PRECISIONS[settings.precision])
    physics = physics.to(kspace_c.device, kspace_c.dtype)
    x0 = list(physics.zero_filled(kspace_c).unbind(1))
    description = f"{SOLVER_NAMES[settings.solver]} {settings.coupling} TV"
    with tqdm(total=settings.iterations, desc=description, disable=not progress, dynamic_ncols=True) as bar:
        blocks, history = run(kspace_c, physics, settings, x0, bar)
    return torch.stack(blocks, dim=1).to(kspace.dtype), history
