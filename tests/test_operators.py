"""Every forward model through the operator interface (lpam.physics.operator.LinearOperator): adjointness,
the data term's gradient against autograd, the normal operator, the norm by power iteration, and
simulation with noise; and every hand-written J_g^T (the feature maps' smoothed_value_and_grad) against
autograd."""
import pytest
import torch

from lpam.algorithm.regularizer import autograd_smoothed_value_and_grad
from lpam.models.cnn import ComplexCNN
from lpam.physics.coils import MultiCoilFourier, simulate_coil_maps
from lpam.physics.fourier import MaskedFourier
from lpam.physics.mri import MRIPhysics
from lpam.physics.nufft import RadialNUFFT, radial_trajectory
from lpam.physics.operator import simulate_measurements
from lpam.physics.radial import RadialMRIPhysics
from lpam.regularizers.tv import BOUNDARIES, FiniteDifferences

SHAPE = (12, 15)
NORMAL_TOLERANCE = 2e-5  # A^H A against adjoint(forward): round-off, or the NUFFT's Toeplitz embedding (7e-6)


def random_complex(*shape, device="cpu", dtype=torch.complex128):
    return torch.randn(*shape, dtype=dtype, device=device)


def random_mask(*batch, device="cpu"):
    mask = torch.rand(*batch, *SHAPE, device=device) < 0.4
    mask[..., SHAPE[0] // 2, SHAPE[1] // 2] = True
    return mask


# name -> (operator factory, image shape)
OPERATORS = {
    "single-coil": (lambda d: MaskedFourier(random_mask(2, device=d)), (2, *SHAPE)),
    "multi-coil, maps per sample": (lambda d: MultiCoilFourier(random_mask(2, device=d),
                                                               random_complex(2, 3, *SHAPE, device=d)), (2, *SHAPE)),
    "multi-coil, shared maps": (lambda d: MultiCoilFourier(random_mask(device=d), random_complex(3, *SHAPE, device=d)),
                                (2, *SHAPE)),
    "MRI physics, 2 contrasts": (lambda d: MRIPhysics(random_mask(2, device=d), 2), (2, 2, *SHAPE)),
    "MRI physics, mask per contrast": (lambda d: MRIPhysics(random_mask(2, 3, device=d), 3), (2, 3, *SHAPE)),
    "MRI physics, coils": (lambda d: MRIPhysics(random_mask(2, device=d), 2, random_complex(2, 4, *SHAPE, device=d)),
                           (2, 2, *SHAPE)),
    "MRI physics, coils per contrast": (lambda d: MRIPhysics(random_mask(2, 2, device=d), 2,
                                                             random_complex(2, 2, 4, *SHAPE, device=d)),
                                        (2, 2, *SHAPE)),
    "radial NUFFT": (lambda d: RadialNUFFT(radial_trajectory(16, 32, "golden"), SHAPE), (2, *SHAPE)),
    "radial NUFFT, coils": (lambda d: RadialNUFFT(radial_trajectory(16, 32, "uniform"), SHAPE,
                                                  random_complex(3, *SHAPE)), (2, *SHAPE)),
    "radial MRI physics, 2 contrasts": (lambda d: RadialMRIPhysics(radial_trajectory(16, 32), SHAPE, 2), (2, 2, *SHAPE)),
    "radial MRI physics, trajectory and coils per contrast": (
        lambda d: RadialMRIPhysics(torch.stack([radial_trajectory(16, 32), radial_trajectory(16, 32, "uniform")]),
                                   SHAPE, 2, random_complex(2, 2, 3, *SHAPE)), (2, 2, *SHAPE)),
}
RADIAL_PHYSICS = [name for name in OPERATORS if name.startswith("radial MRI physics")]


def build(name, device="cpu"):
    torch.manual_seed(0)
    factory, image_shape = OPERATORS[name]
    operator = factory(device)
    x = random_complex(*image_shape, device=device)
    return operator, x, random_complex(*operator(x).shape, device=device)


@pytest.mark.parametrize("name", OPERATORS)
def test_adjointness(name, device):
    """<A x, y> = <x, A^H y> to float64 precision."""
    operator, x, y = build(name, device)
    lhs = torch.vdot(operator(x).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), operator.adjoint(y).flatten())
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    reference = operator.adjoint(operator.forward(x))
    error = torch.linalg.vector_norm(operator.normal(x) - reference)
    assert error <= NORMAL_TOLERANCE * torch.linalg.vector_norm(reference)


@pytest.mark.parametrize("name", RADIAL_PHYSICS)
def test_radial_physics_adjointness_in_float32(name):
    """<A x, y> = <x, A^H y> to 1e-4 in complex64 (the float64 case is test_adjointness)."""
    operator, x, y = build(name)
    x, y = x.to(torch.complex64), y.to(torch.complex64)
    lhs = torch.vdot(operator(x).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), operator.adjoint(y).flatten())
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs)


@pytest.mark.parametrize("name", OPERATORS)
def test_data_term_gradient_is_autograd_gradient(name):
    """grad 1/2 ||A x - y||^2 = A^H (A x - y) as a real function of (Re x, Im x)."""
    operator, x, y = build(name)
    x.requires_grad_(True)
    operator.data_fidelity(x, y).sum().backward()
    torch.testing.assert_close(x.grad, operator.data_fidelity_gradient(x.detach(), y))


@pytest.mark.parametrize("name", OPERATORS)
def test_data_value_and_gradient_together_equal_each_alone(name):
    """(f(x), grad f(x)) from one residual equals data_fidelity and data_gradient (what the solvers call)."""
    operator, x, y = build(name)
    value, gradient = operator.data_value_and_gradient(y)(x)
    torch.testing.assert_close(value, operator.data_fidelity(x, y))
    reference = operator.data_gradient(y)(x)
    assert torch.linalg.vector_norm(gradient - reference) <= NORMAL_TOLERANCE * torch.linalg.vector_norm(reference)


@pytest.mark.parametrize("name", OPERATORS)
def test_norm_by_power_iteration(name):
    """||A|| <= 1 for a projection times a unitary map (maps normalised to sum_c |S_c|^2 <= 1 here), and the
    estimate is the largest singular value: ||A v|| <= ||A|| ||v|| for random v."""
    operator, x, _ = build(name)
    norm = operator.norm(x)
    for _ in range(5):
        v = random_complex(*x.shape)
        assert torch.linalg.vector_norm(operator(v)) <= norm * torch.linalg.vector_norm(v) * (1 + 1e-6)
    if isinstance(operator, MaskedFourier) or (isinstance(operator, MRIPhysics) and not operator.multi_coil):
        assert norm == pytest.approx(1.0, abs=1e-6)


def test_fully_sampled_normalised_maps_have_unit_norm():
    """With sum_c |S_c|^2 = 1 and full sampling A^H A = I, so ||A|| = 1."""
    physics = MRIPhysics(torch.ones(*SHAPE), 2, simulate_coil_maps(4, SHAPE))
    x = random_complex(1, 2, *SHAPE, dtype=torch.complex64)
    torch.testing.assert_close(physics.normal(x), x, atol=1e-5, rtol=0)
    assert physics.norm(x) == pytest.approx(1.0, abs=1e-4)


def test_simulated_noise_is_seeded_and_only_on_measured_samples():
    physics = MRIPhysics(random_mask(2), 2)
    x = random_complex(2, 2, *SHAPE, dtype=torch.complex64)
    clean = simulate_measurements(physics, x)
    noisy = simulate_measurements(physics, x, noise_std=0.1, seed=3)
    torch.testing.assert_close(noisy, simulate_measurements(physics, x, noise_std=0.1, seed=3))
    torch.testing.assert_close(clean, physics(x))
    unmeasured = ~physics.mask[:, None].expand_as(noisy)
    assert bool((noisy[unmeasured] == 0).all()) and not torch.equal(noisy, clean)
    with pytest.raises(ValueError, match="noise_std"):
        simulate_measurements(physics, x, noise_std=-1.0)


def test_physics_of_one_sample_and_device_move():
    physics = MRIPhysics(random_mask(3), 2, random_complex(3, 4, *SHAPE, dtype=torch.complex64))
    x = random_complex(3, 2, *SHAPE, dtype=torch.complex64)
    y = physics(x)
    torch.testing.assert_close(physics.sample(1)(x[1:2]), y[1:2])
    assert physics.to("cpu") is physics


# name -> (feature map g with a hand-written smoothed_value_and_grad, number of image blocks it takes)
FEATURE_MAPS = {f"TV, {boundary} boundary": (lambda b=boundary: FiniteDifferences(b), 3) for boundary in BOUNDARIES}
FEATURE_MAPS.update({
    f"CNN, {init} init, {padding} padding, {inputs} input(s)":
        (lambda i=init, p=padding, n=inputs: ComplexCNN(n, features=12, init=i, padding=p).double(), inputs)
    for init in ("random", "tv") for padding in ("zeros", "circular") for inputs in (1, 2, 3)
})


@pytest.mark.parametrize("name", FEATURE_MAPS)
def test_hand_written_feature_map_gradient_matches_autograd(name):
    """sum_i r_eps(g_i(x)) and its gradient J_g^T (dr_eps / dg) per block, against autograd, per eps of the
    batch (one eps in the smooth region, one in the linear region of r_eps)."""
    factory, blocks = FEATURE_MAPS[name]
    torch.manual_seed(blocks)
    g = factory()
    x = [0.3 * torch.randn(2, 11, 13, dtype=torch.complex128) for _ in range(blocks)]
    eps = torch.tensor([0.01, 2.0], dtype=torch.float64)
    value, grads = g.smoothed_value_and_grad(x, eps)
    reference_value, reference_grads = autograd_smoothed_value_and_grad(g, x, eps)
    torch.testing.assert_close(value, reference_value.detach())
    for a, b in zip(grads, reference_grads):
        torch.testing.assert_close(a, b.detach(), rtol=1e-10, atol=1e-12)


def test_physics_imports_nothing_outside_itself():
    """The physics knows nothing of data files, networks, training, plotting or the CLI."""
    import ast
    from pathlib import Path

    import lpam.physics

    for module in Path(lpam.physics.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            outside = [n for n in names if n.startswith("lpam") and not n.startswith("lpam.physics")]
            assert not outside, f"{module.name} imports {outside}"
