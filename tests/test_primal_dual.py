"""The Condat-Vu primal-dual solver (lpam.algorithm.primal_dual) and the TV model solved with it: agreement with
a different method on a tiny denoising problem, the TV dual projection and exact value, convergence on a small
MRI problem below LPAM-TV's objective, and bad solver names."""
import pytest
import torch

from lpam.algorithm.lpam import SmoothFunction
from lpam.algorithm.primal_dual import PrimalDualProblem, solve_primal_dual, step_sizes
from lpam.algorithm.smoothing import group_norms, squared_norms
from lpam.physics.fourier import MaskedFourier
from lpam.physics.masks import MaskSpec
from lpam.physics.mri import MRIPhysics
from lpam.reconstruction import SOLVERS, TVSettings, reconstruct_tv, tv_problem
from lpam.regularizers.tv import (DIFFERENCES_NORM_SQUARED, FiniteDifferences, feature_sizes, project_dual,
                                  tv_value)
from lpam.tv_tuning import tuned_settings, tuned_tv

from test_lpam import phantom

LAM = 0.1  # denoising weight of the tiny problem (noise 0.3): converges to machine precision in 1000 iterations


def noisy_images() -> list[torch.Tensor]:
    """Two complex 10 x 12 blocks: a step edge (heights 1 and 2) with complex noise."""
    generator = torch.Generator().manual_seed(0)
    edge = (torch.arange(12) > 5).double()
    return [0.3 * torch.randn(1, 10, 12, generator=generator, dtype=torch.complex128) + (j + 1) * edge
            for j in range(2)]


def denoising(noisy: list[torch.Tensor], coupling: str) -> PrimalDualProblem:
    """min_x sum_j 1/2 ||x_j - b_j||^2 + LAM TV(x): A = I, no MRI."""
    differences, sizes = FiniteDifferences(), feature_sizes(noisy)
    return PrimalDualProblem(
        smooth=[SmoothFunction(lambda x, b=b: 0.5 * squared_norms(x - b), lambda x, b=b: x - b) for b in noisy],
        operator=lambda blocks: differences(*blocks),
        adjoint=lambda features: differences.adjoint(features, noisy),
        operator_norm_squared=DIFFERENCES_NORM_SQUARED,
        prox_dual=lambda features, _: project_dual(features, LAM, sizes, coupling),
        g_value=lambda features: tv_value(features, LAM, sizes, coupling),
    )


def dual_fista(noisy: list[torch.Tensor], coupling: str, iterations: int = 3000) -> list[torch.Tensor]:
    """Reference by another method: FISTA on the dual min_{||p_i|| <= LAM} 1/2 ||b - D^T p||^2 (step 1/8),
    x = b - D^T p."""
    differences, sizes = FiniteDifferences(), feature_sizes(noisy)
    dual = torch.zeros_like(differences(*noisy))
    point, momentum = dual.clone(), 1.0
    for _ in range(iterations):
        x = [b - a for b, a in zip(noisy, differences.adjoint(point, noisy))]
        new = project_dual(point + differences(*x) / DIFFERENCES_NORM_SQUARED, LAM, sizes, coupling)
        next_momentum = (1 + (1 + 4 * momentum**2) ** 0.5) / 2
        point = new + (momentum - 1) / next_momentum * (new - dual)
        dual, momentum = new, next_momentum
    return [b - a for b, a in zip(noisy, differences.adjoint(dual, noisy))]


def relative_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float((sum(squared_norms(u - v) for u, v in zip(a, b)) / sum(squared_norms(v) for v in b)).sqrt())


@pytest.mark.parametrize("coupling", ["joint", "separate"])
def test_matches_a_dual_fista_reference_on_tv_denoising(coupling):
    noisy = noisy_images()
    problem = denoising(noisy, coupling)
    x, history = solve_primal_dual(problem, noisy, iterations=1000)
    reference = dual_fista(noisy, coupling)
    assert relative_distance(x, reference) < 1e-5
    reference_value = float(sum(f.value(r) for f, r in zip(problem.smooth, reference))
                            + problem.g_value(problem.operator(reference)))
    assert history.objective[0][-1] == pytest.approx(reference_value, rel=1e-7)
    assert history.primal_change[0][-1] < 1e-6 and history.dual_change[0][-1] < 1e-6
    assert len(history.objective[0]) == 1000 and history.per_sample(0).keys() == {"objective", "primal_change",
                                                                                  "dual_change"}


def test_joint_and_separate_solutions_differ():
    noisy = noisy_images()
    joint, _ = solve_primal_dual(denoising(noisy, "joint"), noisy, iterations=300)
    separate, _ = solve_primal_dual(denoising(noisy, "separate"), noisy, iterations=300)
    assert relative_distance(joint, separate) > 1e-3


@pytest.mark.parametrize("coupling, groups", [("joint", [slice(0, 8)]), ("separate", [slice(0, 4), slice(4, 8)])])
def test_dual_projection_bounds_each_coupling_group_and_is_idempotent(coupling, groups):
    features = torch.randn(2, 8, 6, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lam, sizes = 0.5, [4, 4]
    projected = project_dual(features, lam, sizes, coupling)
    for group in groups:
        assert group_norms(projected[:, group]).max() <= lam * (1 + 1e-12)
        inside = group_norms(features[:, group]) <= lam  # points inside the ball are kept as they are
        torch.testing.assert_close(torch.where(inside, features[:, group], projected[:, group]), projected[:, group])
    torch.testing.assert_close(project_dual(projected, lam, sizes, coupling), projected)
    other = "separate" if coupling == "joint" else "joint"
    assert not torch.allclose(project_dual(features, lam, sizes, other), projected)


def test_exact_tv_value_and_adjoint_of_the_stacked_differences():
    blocks = [torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(j), dtype=torch.complex128)
              for j in range(2)]
    differences, sizes = FiniteDifferences(), feature_sizes(blocks)
    features = differences(*blocks)
    joint, separate = tv_value(features, 0.3, sizes, "joint"), tv_value(features, 0.3, sizes, "separate")
    torch.testing.assert_close(joint, 0.3 * group_norms(features).flatten(1).sum(1))
    assert (joint <= separate).all() and (joint < separate).any()  # ||(a, b)|| <= ||a|| + ||b||
    dual = torch.randn_like(features)
    pulled = differences.adjoint(dual, blocks)
    inner = sum(torch.view_as_real(x * p.conj()).select(-1, 0).flatten(1).sum(1) for x, p in zip(blocks, pulled))
    torch.testing.assert_close((features * dual).flatten(1).sum(1), inner)


def mri_problem(size=32):
    generator = torch.Generator().manual_seed(1)
    mask = torch.rand(size, size, generator=generator) < 0.3
    mask[size // 2 - 3: size // 2 + 3, size // 2 - 3: size // 2 + 3] = True
    truth = phantom(2, size)
    return MaskedFourier(mask)(truth), MRIPhysics(mask, 2)


@pytest.mark.parametrize("coupling", ["joint", "separate"])
def test_converged_objective_is_below_lpam_tv_at_its_default_iterations(coupling):
    """The exact objective sum_j 1/2 ||A_j x_j - y_j||^2 + lam TV(x) after 1000 primal-dual iterations lies below
    that of LPAM-TV's 300 iterations, and the primal-dual iterates have settled."""
    kspace, physics = mri_problem(size=24)
    lpam_settings = TVSettings(lam=0.02, coupling=coupling, precision="complex128")
    lpam, _ = reconstruct_tv(kspace, physics, lpam_settings)
    assert lpam_settings.iterations == 300
    settings = TVSettings(lam=0.02, coupling=coupling, precision="complex128", solver="primal-dual")
    converged, history = reconstruct_tv(kspace, physics, settings)
    problem = tv_problem(kspace, physics, settings, list(converged.unbind(1)))
    lpam_blocks = list(lpam.unbind(1))
    lpam_value = float(sum(f.value(x) for f, x in zip(problem.smooth, lpam_blocks))
                       + problem.g_value(problem.operator(lpam_blocks)))
    objective, change = history.objective[0], history.primal_change[0]
    assert len(objective) == 1000 and objective[-1] < lpam_value
    assert objective[-100] - objective[-1] < 2e-4 * objective[-1]
    assert change[-1] < 1e-3 * max(change)


def test_step_sizes_satisfy_the_convergence_condition():
    primal, dual = step_sizes(1.0, 8.0)
    assert primal == 1.5 and 1 / primal - dual * 8.0 >= 0.5
    with pytest.raises(ValueError, match="factor in \\(0, 2\\)"):
        step_sizes(1.0, 8.0, primal_factor=2.0)
    with pytest.raises(ValueError, match="iterations"):
        solve_primal_dual(denoising(noisy_images(), "joint"), noisy_images(), iterations=0)


def test_bad_solver_names_are_errors_listing_the_choices():
    assert SOLVERS == ("lpam", "primal-dual")
    with pytest.raises(ValueError, match="unknown TV solver 'admm'; choose one of lpam, primal-dual"):
        TVSettings(solver="admm")
    settings = TVSettings()
    settings.solver = "pdhg"
    kspace, physics = mri_problem(size=16)
    with pytest.raises(ValueError, match="unknown TV solver 'pdhg'"):
        reconstruct_tv(kspace, physics, settings)
    with pytest.raises(ValueError, match="unknown TV solver"):
        tuned_tv(MaskSpec(), "joint", "fista")


def test_solver_defaults_and_tuned_weights():
    assert TVSettings().iterations == 300 and TVSettings(solver="primal-dual").iterations == 1000
    settings = tuned_settings(MaskSpec("cartesian-random", None, 4.0, 0.08), "joint", solver="primal-dual")
    assert settings.solver == "primal-dual" and settings.iterations == 1000
    assert settings.lam == tuned_tv(MaskSpec("cartesian-random", None, 4.0, 0.08), "joint", "primal-dual")[0]
