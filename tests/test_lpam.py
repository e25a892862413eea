"""The LPAM solver (docs/method.md section 3) on small joint-TV problems: descent, eps decay, agreement with a
reference solver, per-sample decisions, N blocks, and error paths."""
import pytest
import torch

from lpam.algorithm.lpam import Constants, StepSizes, solve
from lpam.algorithm.regularizer import Regularizer, Term
from lpam.physics.fourier import MaskedFourier
from lpam.physics.mri import MRIPhysics
from lpam.problem import mri_objective
from lpam.regularizers.tv import BOUNDARIES, FiniteDifferences, total_variation


def phantom(num_contrasts=2, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    v, h = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    head = (((v - size / 2) / (0.4 * size)) ** 2 + ((h - size / 2) / (0.35 * size)) ** 2 < 1).double()
    images = []
    for j in range(num_contrasts):
        blob = (((v - size / 2 - 3) ** 2 + (h - size / 2 + 2 * j) ** 2) < (size / 6) ** 2).double()
        images.append((0.4 + 0.2 * j) * head + (0.5 - 0.3 * j) * blob + 0.02 * torch.rand(size, size, generator=generator, dtype=torch.float64))
    return torch.stack(images)[None].to(torch.complex128)


def problem(num_contrasts=2, size=32, lam=0.02, coupling="joint", truth=None):
    generator = torch.Generator().manual_seed(1)
    mask = torch.rand(size, size, generator=generator) < 0.3
    mask[size // 2 - 3 : size // 2 + 3, size // 2 - 3 : size // 2 + 3] = True
    truth = phantom(num_contrasts, size) if truth is None else truth
    kspace = MaskedFourier(mask)(truth)
    physics = MRIPhysics(mask, num_contrasts)
    objective = mri_objective(kspace, physics, total_variation(num_contrasts, lam, coupling))
    return objective, list(physics.adjoint(kspace).unbind(1)), truth


def eps_constant_segments(history, sample=0):
    """Pairs (k, k+1) of iterations sharing the same eps."""
    eps = history.eps[sample]
    return [k for k in range(len(eps) - 1) if eps[k] == eps[k + 1]]


@pytest.mark.parametrize("tau", [-0.5, 50.0])
def test_safeguard_keeps_descent_with_a_bad_residual_step(tau):
    objective, x0, _ = problem()
    steps = StepSizes.constant(2, alpha=1.0, tau=tau, abar=1.0)
    _, history = solve(objective, x0, steps, eps0=0.05, constants=Constants(sigma=10.0), max_iterations=60)
    phi = history.phi[0]
    assert history.branch[0].count("safeguard") == len(phi)
    for k in eps_constant_segments(history):
        assert phi[k + 1] <= phi[k] + 1e-12
    assert not any(history.failed[0])


def test_eps_decreases_and_gradient_vanishes_after_reductions():
    objective, x0, _ = problem()
    steps = StepSizes.constant(2, alpha=1.0, tau=0.1, abar=1.0)
    constants = Constants(sigma=20.0, rho=0.5, tol=1e-12)
    _, history = solve(objective, x0, steps, eps0=0.05, constants=constants, max_iterations=400)
    eps, grad = history.eps[0], history.grad_norm[0]
    reductions = [k for k in range(len(eps) - 1) if eps[k + 1] < eps[k]]
    assert len(reductions) >= 10
    assert eps[-1] < 0.05 * 0.9**10
    after = [grad[k] for k in reductions]  # ||grad Phi_eps_k(x^{k+1})|| at the iterates right after reductions
    for k, g in zip(reductions, after):
        assert g < constants.sigma * constants.gamma * eps[k]
    assert max(after[-3:]) < 0.2 * max(after[:3])


def reference_minimiser(objective, x0, eps, iterations=4000):
    """Nesterov-accelerated gradient descent on the same smoothed (convex) objective, eps fixed."""
    eps_t = torch.full((1, 1), eps, dtype=torch.float64)
    lipschitz = 1.0 + objective.regularizer.terms[0].weight * 8.0 / eps
    x, previous = [b.clone() for b in x0], [b.clone() for b in x0]
    for k in range(iterations):
        momentum = k / (k + 3)
        y = [a + momentum * (a - b) for a, b in zip(x, previous)]
        _, grads = objective.value_and_grads(y, eps_t)
        previous, x = x, [a - g / lipschitz for a, g in zip(y, grads)]
    return x


def test_joint_tv_agrees_with_accelerated_gradient_reference():
    objective, x0, _ = problem(size=24)
    eps = 0.05
    steps = StepSizes.constant(2, alpha=1.0, tau=eps / (8 * 0.02), abar=1.0)
    lpam, history = solve(objective, x0, steps, eps0=eps, constants=Constants(rho=0.5), max_iterations=1500,
                          eps_decay=False)
    reference = reference_minimiser(objective, x0, eps)
    eps_t = torch.full((1, 1), eps, dtype=torch.float64)
    gap = objective.value(lpam, eps_t) - objective.value(reference, eps_t)
    distance = sum((a - b).abs().square().sum() for a, b in zip(lpam, reference)).sqrt()
    scale = sum(b.abs().square().sum() for b in reference).sqrt()
    assert abs(float(gap)) < 1e-6
    assert float(distance / scale) < 1e-3


def test_joint_tv_improves_on_zero_filled():
    objective, x0, truth = problem()
    steps = StepSizes.constant(2, alpha=1.0, tau=0.05 / (8 * 0.02), abar=1.0)
    out, _ = solve(objective, x0, steps, eps0=0.05, constants=Constants(rho=0.5), max_iterations=200)
    for j in range(2):
        error_tv = (out[j].abs() - truth[:, j].abs()).norm()
        error_zf = (x0[j].abs() - truth[:, j].abs()).norm()
        assert error_tv < 0.8 * error_zf


def test_decisions_are_per_sample():
    """A batch of two gives, sample by sample, exactly what each sample gives alone."""
    truths = [phantom(seed=0), 0.5 * phantom(seed=3).flip(-1)]
    steps = StepSizes.constant(2, alpha=1.0, tau=0.3, abar=1.0)
    constants = Constants(sigma=20.0)
    objective, x0, _ = problem(truth=torch.cat(truths))
    batch_out, batch_history = solve(objective, x0, steps, eps0=0.05, constants=constants, max_iterations=60)
    assert batch_history.branch[0] != batch_history.branch[1] or batch_history.eps[0] != batch_history.eps[1]
    for s, truth in enumerate(truths):
        objective, x0, _ = problem(truth=truth)
        out, history = solve(objective, x0, steps, eps0=0.05, constants=constants, max_iterations=60)
        assert history.branch[0] == batch_history.branch[s]
        assert history.eps[0] == pytest.approx(batch_history.eps[s])
        for a, b in zip(out, batch_out):
            torch.testing.assert_close(a[0], b[s])


def test_three_blocks_and_separate_coupling():
    for num_contrasts, coupling in [(3, "joint"), (2, "separate"), (3, "separate")]:
        objective, x0, truth = problem(num_contrasts=num_contrasts, coupling=coupling)
        steps = StepSizes.constant(num_contrasts, alpha=1.0, tau=0.2, abar=1.0)
        out, history = solve(objective, x0, steps, eps0=0.05, max_iterations=100)
        assert len(out) == num_contrasts and len(history.phi[0]) == 100
        for j in range(num_contrasts):
            assert (out[j].abs() - truth[:, j].abs()).norm() < (x0[j].abs() - truth[:, j].abs()).norm()


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_finite_differences_adjoint(boundary):
    """<D x, p> = <x, D^T p> for complex images, to float64 round-off."""
    from lpam.regularizers.tv import finite_differences, finite_differences_adjoint

    x = torch.randn(2, 7, 9, dtype=torch.complex128)
    p = torch.randn(2, 4, 7, 9, dtype=torch.float64)
    left = (finite_differences(x, boundary) * p).sum()
    right = torch.view_as_real(x * finite_differences_adjoint(p, x, boundary).conj()).select(-1, 0).sum()
    torch.testing.assert_close(left, right, rtol=1e-12, atol=1e-12)


def test_tv_boundaries_at_the_last_row_and_column():
    """D x there: 0 ("zero"), x_0 - x_last ("circular"), -x_last ("zero-extension", x = 0 outside)."""
    from lpam.regularizers.tv import finite_differences

    x = torch.randn(1, 4, 5, dtype=torch.float64)
    expected = {"zero": (torch.zeros(5), torch.zeros(4)), "circular": (x[0, 0] - x[0, -1], x[0, :, 0] - x[0, :, -1]),
                "zero-extension": (-x[0, -1], -x[0, :, -1])}
    for boundary, (last_row, last_column) in expected.items():
        vertical, horizontal = finite_differences(x, boundary)[0]
        torch.testing.assert_close(vertical[-1], last_row.double())
        torch.testing.assert_close(horizontal[:, -1], last_column.double())
        torch.testing.assert_close(vertical[:-1], x[0, 1:] - x[0, :-1])


def test_unknown_tv_boundary_is_an_error():
    with pytest.raises(ValueError, match="unknown TV boundary"):
        FiniteDifferences("mirror")


def test_autograd_fallback_for_a_plain_callable():
    """A feature map without a hand-written J^T works through autograd."""
    regularizer = Regularizer([Term(lambda a, b: torch.stack([a.real * b.real, a.imag - b.imag], 1), (0, 1))])
    x = [torch.randn(1, 5, 5, dtype=torch.complex128) for _ in range(2)]
    eps = torch.full((1, 1), 0.1, dtype=torch.float64)
    value, grads = regularizer.value_and_grads(x, eps)
    leaves = [b.clone().requires_grad_(True) for b in x]
    regularizer.value(leaves, eps).sum().backward()
    for g, leaf in zip(grads, leaves):
        torch.testing.assert_close(g.detach(), leaf.grad)


def test_bad_input_errors():
    objective, x0, _ = problem()
    steps = StepSizes.constant(2, 1.0, 0.1, 1.0)
    with pytest.raises(FloatingPointError, match="block 1 contains NaN"):
        solve(objective, [x0[0], x0[1] * float("nan")], steps, eps0=0.05)
    with pytest.raises(ValueError, match="at least 2 blocks"):
        solve(objective, [x0[0]], steps, eps0=0.05)
    with pytest.raises(ValueError, match="batch size"):
        solve(objective, [x0[0], torch.cat([x0[1], x0[1]])], steps, eps0=0.05)
    with pytest.raises(ValueError, match="eps0 must be positive"):
        solve(objective, x0, steps, eps0=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        Constants(gamma=1.5)
    with pytest.raises(FloatingPointError, match="not finite|NaN"):
        solve(objective, x0, StepSizes.constant(2, 1.0, 1e300, 1.0), eps0=0.05, safeguard=False, max_iterations=5)


def test_tv_reconstruction_precisions_agree():
    """reconstruct_tv in complex64 (the default, twice as fast) matches complex128 on the same problem."""
    from lpam.reconstruction import TVSettings, reconstruct_tv

    truth = phantom(2, 32)
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[::2] = True
    mask[12:20, 12:20] = True
    kspace = MaskedFourier(mask)(truth)
    physics = MRIPhysics(mask, 2)
    single, _ = reconstruct_tv(kspace, physics, TVSettings(lam=0.02, iterations=60))
    double, _ = reconstruct_tv(kspace, physics, TVSettings(lam=0.02, iterations=60, precision="complex128"))
    assert single.dtype == kspace.dtype
    assert (single - double).abs().max() < 1e-3 * double.abs().max()
    with pytest.raises(ValueError, match="precision"):
        reconstruct_tv(kspace, physics, TVSettings(precision="float16"))
