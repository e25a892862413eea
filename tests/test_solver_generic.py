"""The generic LPAM solver (docs/method.md section 3) on a small problem that is not MRI: joint denoising of
two real 1-D signals, f_j(x_j) = 1/2 ||x_j - b_j||^2, R = lam ||g(x_1, x_2)||_{2,1} with g the stacked finite
differences of both blocks (convex) or a fixed random tanh feature map (nonconvex). Only lpam.algorithm is used."""
import ast
from functools import lru_cache
from pathlib import Path

import pytest
import torch

import lpam.algorithm
from lpam.algorithm.lpam import Constants, Objective, SmoothFunction, StepSizes, solve
from lpam.algorithm.regularizer import Regularizer, Term

LENGTH = 64
CONSTANTS = Constants(sigma=10.0, rho=0.5, tol=1e-4)
EPS0 = 0.1
ITERATIONS = 150


@pytest.fixture(autouse=True)
def one_thread():
    """These 64-sample problems are fastest on one thread (no thread synchronisation per tiny op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clean_signals() -> list[torch.Tensor]:
    """Two piecewise-constant signals in [0, 1] sharing an edge at LENGTH / 3."""
    t = torch.arange(LENGTH, dtype=torch.float64)
    return [0.1 + 0.8 * (t > LENGTH / 3).double(), 0.5 * (t > LENGTH / 3).double() + 0.3 * (t > 2 * LENGTH / 3).double()]


def noisy_signals(batch: int = 2) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [c + 0.1 * torch.randn(batch, LENGTH, generator=generator, dtype=torch.float64) for c in clean_signals()]


def data_term(b: torch.Tensor) -> SmoothFunction:
    """f(x) = 1/2 ||x - b||^2 per sample, grad f(x) = x - b."""
    return SmoothFunction(value=lambda x: 0.5 * (x - b).square().sum(1), grad=lambda x: x - b)


def joint_differences(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """g(x) = (D x_1, D x_2) grouped per position: features (B, 2, LENGTH - 1)."""
    return torch.stack([x1.diff(dim=-1), x2.diff(dim=-1)], 1)


WEIGHTS = torch.randn(48, 2 * LENGTH, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def tanh_features(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """g(x) = tanh(W (x_1; x_2) / sqrt(2 LENGTH)), W fixed Gaussian (48, 2 LENGTH): 16 positions of 3 channels."""
    return torch.tanh(torch.cat([x1, x2], 1) @ WEIGHTS.T / (2 * LENGTH) ** 0.5).reshape(x1.shape[0], 3, 16)


@lru_cache(maxsize=None)  # each test reads the results; the solver does not modify them
def run(feature_map, lam: float, alpha: float, tau: float):
    b = noisy_signals()
    objective = Objective([data_term(bj) for bj in b], Regularizer([Term(feature_map, (0, 1), lam)]))
    steps = StepSizes.constant(2, alpha=alpha, tau=tau, abar=1.0)
    return solve(objective, [bj.clone() for bj in b], steps, EPS0, CONSTANTS, ITERATIONS)


def check_convergence_machinery(history, sample: int) -> None:
    """Phi_eps never increases while eps is constant, no safeguard search fails, eps is reduced several times,
    and ||grad Phi_eps|| at the iterates right after the reductions is below sigma gamma eps and falls."""
    phi, eps, grad = history.phi[sample], history.eps[sample], history.grad_norm[sample]
    for k in range(len(eps) - 1):
        if eps[k + 1] == eps[k]:
            assert phi[k + 1] <= phi[k] + 1e-12 * abs(phi[k])
    assert not any(history.failed[sample])
    reductions = [k for k in range(len(eps) - 1) if eps[k + 1] < eps[k]]
    assert len(reductions) >= 10
    after = [grad[k] for k in reductions]
    for k, g in zip(reductions, after):
        assert g < CONSTANTS.sigma * CONSTANTS.gamma * eps[k]
    assert max(after[-3:]) < 0.1 * max(after[:3])


@pytest.mark.parametrize("feature_map, lam", [(joint_differences, 0.05), (tanh_features, 0.5)],
                         ids=["joint-differences", "tanh"])
def test_descent_rule_converges_with_both_branches(feature_map, lam):
    """tau = alpha (docs/method.md section 4b): learned-style residual steps are accepted while eps is large,
    the safeguard takes over as eps (and with it 1 / the Lipschitz constant) shrinks."""
    _, history = run(feature_map, lam, alpha=0.1, tau=0.1)
    for sample in range(2):
        assert "residual" in history.branch[sample] and "safeguard" in history.branch[sample]
        check_convergence_machinery(history, sample)


def test_safeguard_rescues_a_bad_residual_step():
    """A huge tau makes every residual candidate fail the test: the safeguard alone keeps the descent."""
    _, history = run(joint_differences, 0.05, alpha=0.1, tau=50.0)
    for sample in range(2):
        assert set(history.branch[sample]) == {"safeguard"}
        check_convergence_machinery(history, sample)


def learned_steps(halvings: int) -> tuple[list[list[int]], object]:
    """The halvings of each accepted learned step, per sample, with alpha = tau = 0.8 (about twice what the
    smoothed TV term's gradient allows at eps0), and the history."""
    b = noisy_signals()
    objective = Objective([data_term(bj) for bj in b], Regularizer([Term(joint_differences, (0, 1), 0.05)]))
    constants = Constants(sigma=10.0, rho=0.5, tol=1e-4, learned_backtracks=halvings)
    steps = StepSizes.constant(2, alpha=0.8, tau=0.8, abar=1.0)
    _, history = solve(objective, [bj.clone() for bj in b], steps, EPS0, constants, ITERATIONS)
    learned = [[history.backtracks[s][k] for k, branch in enumerate(history.branch[s]) if branch == "residual"]
               for s in range(2)]
    return learned, history


def test_learned_step_line_search():
    """Too long a learned step is rejected and the safeguard takes over; with two halvings of its step sizes
    the shortened learned candidate passes the same test for several more iterations, and the machinery holds."""
    plain, plain_history = learned_steps(0)
    searched, history = learned_steps(2)
    for sample in range(2):
        assert all(h == 0 for h in plain[sample])
        assert len(searched[sample]) >= len(plain[sample]) + 3
        assert set(searched[sample]) - {0} <= {1, 2} and {1, 2} <= set(searched[sample])
        check_convergence_machinery(plain_history, sample)
        check_convergence_machinery(history, sample)


@pytest.mark.parametrize("value", [-1, 1.5])
def test_learned_backtracks_must_be_a_count(value):
    with pytest.raises(ValueError, match="learned_backtracks"):
        Constants(learned_backtracks=value)


def test_joint_tv_denoises():
    out, _ = run(joint_differences, 0.05, alpha=0.1, tau=0.1)
    for x, b, clean in zip(out, noisy_signals(), clean_signals()):
        assert ((x - clean).norm(dim=1) < 0.7 * (b - clean).norm(dim=1)).all()


def test_the_solver_imports_nothing_outside_lpam_algorithm():
    """The generic solver knows nothing of MRI, networks or data (DEVELOPERS.md, layers)."""
    for path in Path(lpam.algorithm.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                assert not name.startswith("lpam") or name.startswith("lpam.algorithm"), f"{path.name} imports {name}"
