"""The radial NUFFT operator (lpam.physics.nufft): trajectories, adjointness, the data term's gradient, the
Toeplitz normal operator, the norm, the density-compensated zero-filled image and the checks of its input."""
import math

import pytest
import torch

from lpam.physics.coils import simulate_coil_maps
from lpam.physics.nufft import GOLDEN_ANGLE, RadialNUFFT, radial_trajectory

SHAPE = (32, 36)
SPOKES, READOUT = 24, 72
FULL_SPOKES = 64  # >= pi / 2 * 36 (Nyquist for a 36 px side): full radial sampling
ADJOINT_TOLERANCE = {torch.complex64: 1e-4, torch.complex128: 1e-10}
# Toeplitz A^H A against adjoint(forward): measured 5.8e-6 to 7.4e-6 in both precisions (the Kaiser-Bessel
# accuracy; the complex64 Toeplitz product is within 6e-6 of the complex128 adjoint(forward))
TOEPLITZ_TOLERANCE = {torch.complex64: 2e-5, torch.complex128: 2e-5}
ZERO_FILLED_TOLERANCE = 0.02  # measured 1.1-1.2% (relative L2 of the magnitude error), golden and uniform


def _maps(kind):
    if kind == "single-coil":
        return None
    maps = simulate_coil_maps(4, SHAPE)
    return maps if kind == "shared maps" else torch.stack([maps, maps.roll(1, dims=0)])


COILS = ("single-coil", "shared maps", "maps per sample")
OPERATORS = {kind: RadialNUFFT(radial_trajectory(SPOKES, READOUT), SHAPE, _maps(kind)) for kind in COILS}


def _random(shape, dtype, seed=0):
    return torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _relative(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _smooth_phantom(dtype):
    """Two Gaussian blobs with a slow phase ramp."""
    rows = torch.arange(SHAPE[0], dtype=torch.float64)[:, None] - SHAPE[0] // 2
    cols = torch.arange(SHAPE[1], dtype=torch.float64)[None] - SHAPE[1] // 2
    magnitude = torch.exp(-((rows - 3) ** 2 + (cols + 4) ** 2) / 50) \
        + 0.6 * torch.exp(-(rows + 5) ** 2 / 18 - (cols - 5) ** 2 / 72)
    return torch.polar(magnitude, 0.05 * (rows + cols)).to(dtype)[None]


@pytest.mark.parametrize("dtype", ADJOINT_TOLERANCE)
@pytest.mark.parametrize("coils", COILS)
def test_adjointness(coils, dtype):
    """<A x, y> = <x, A^H y>; the output follows the image dtype."""
    operator = OPERATORS[coils]
    x = _random((2, *SHAPE), dtype)
    ax = operator(x)
    assert ax.dtype == dtype and ax.shape == ((2, SPOKES * READOUT) if coils == "single-coil"
                                              else (2, 4, SPOKES * READOUT))
    y = _random(ax.shape, dtype, seed=1)
    lhs = torch.vdot(ax.flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), operator.adjoint(y).flatten())
    assert abs(lhs - rhs) <= ADJOINT_TOLERANCE[dtype] * abs(lhs)
    assert operator.sampled(y) is y


@pytest.mark.parametrize("coils", COILS)
def test_data_term_gradient_is_autograd_gradient(coils):
    """grad 1/2 ||A x - y||^2 = A^H (A x - y) as a real function of (Re x, Im x)."""
    operator = OPERATORS[coils]
    x = _random((2, *SHAPE), torch.complex128).requires_grad_(True)
    y = _random(operator(x).shape, torch.complex128, seed=1)
    operator.data_fidelity(x, y).sum().backward()
    torch.testing.assert_close(x.grad, operator.data_fidelity_gradient(x.detach(), y), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", TOEPLITZ_TOLERANCE)
@pytest.mark.parametrize("coils", COILS)
def test_toeplitz_normal_matches_adjoint_forward(coils, dtype):
    operator = OPERATORS[coils]
    x = _random((2, *SHAPE), dtype)
    normal = operator.normal(x)
    assert normal.dtype == dtype
    assert _relative(normal, operator.adjoint(operator(x))) <= TOEPLITZ_TOLERANCE[dtype]
    if dtype == torch.complex64:  # the Toeplitz product itself is float32-accurate against complex128
        reference = operator.adjoint(operator(x.to(torch.complex128)))
        assert _relative(normal.to(torch.complex128), reference) <= 1e-5


def test_norm_is_one_and_bounds_the_operator():
    """s = 1 / ||N|| makes the single-coil ||A|| = 1; maps with sum_c |S_c|^2 = 1 keep ||A|| <= 1."""
    for coils, operator in OPERATORS.items():
        x = _random((2, *SHAPE), torch.complex128)
        norm = operator.norm(x)
        if coils == "single-coil":
            assert norm == pytest.approx(1.0, abs=1e-6)
            assert operator.norm(x.to(torch.complex64)) == pytest.approx(1.0, abs=1e-4)
        assert 0.5 < norm <= 1 + 1e-6
        v = _random((2, *SHAPE), torch.complex128, seed=2)
        assert (torch.linalg.vector_norm(operator(v).flatten(1), dim=1)
                <= norm * torch.linalg.vector_norm(v.flatten(1), dim=1) * (1 + 1e-6)).all()


@pytest.mark.parametrize("kind", ("golden", "uniform"))
def test_radial_trajectories(kind):
    """Spokes through the centre at theta_j = j Delta mod pi, samples in [-pi, pi), default readout 2 max(H, W)."""
    trajectory = radial_trajectory(SPOKES, kind=kind, shape=SHAPE)
    readout = 2 * max(SHAPE)
    assert trajectory.shape == (2, SPOKES * readout) and trajectory.dtype == torch.float64
    assert bool((trajectory >= -math.pi).all() and (trajectory < math.pi).all())
    spokes = trajectory.reshape(2, SPOKES, readout)
    assert torch.equal(spokes[:, :, readout // 2], torch.zeros(2, SPOKES))  # every spoke through the centre
    ends = spokes[:, :, 0]  # r = -pi: (omega_y, omega_x) = -pi (sin theta, cos theta)
    torch.testing.assert_close(torch.linalg.vector_norm(ends, dim=0), torch.full((SPOKES,), math.pi,
                                                                                   dtype=torch.float64))
    angles = torch.remainder(torch.atan2(-ends[0], -ends[1]), math.pi)
    step = GOLDEN_ANGLE if kind == "golden" else math.pi / SPOKES
    expected = torch.remainder(torch.arange(SPOKES, dtype=torch.float64) * step, math.pi)
    torch.testing.assert_close(angles, expected)
    if kind == "golden":
        assert math.degrees(GOLDEN_ANGLE) == pytest.approx(111.2461, abs=1e-4)
    else:
        assert torch.allclose(angles.sort().values.diff(), torch.tensor(step, dtype=torch.float64))
    torch.testing.assert_close(radial_trajectory(SPOKES, readout, kind), trajectory)


@pytest.mark.parametrize("kind", ("golden", "uniform"))
def test_zero_filled_image_of_a_smooth_phantom(kind):
    """Full radial sampling: the density-compensated A^H (c w y) matches a smooth image's magnitude."""
    operator = RadialNUFFT(radial_trajectory(FULL_SPOKES, READOUT, kind), SHAPE)
    for dtype in (torch.complex64, torch.complex128):
        x = _smooth_phantom(dtype)
        image = operator.zero_filled(operator(x))
        assert image.dtype == dtype
        assert _relative(image.abs(), x.abs()) <= ZERO_FILLED_TOLERANCE


def test_zero_filled_multi_coil_image():
    """With sum_c |S_c|^2 = 1 the zero-filled image is the SENSE-1 combination and matches too."""
    coils = RadialNUFFT(radial_trajectory(FULL_SPOKES, READOUT), SHAPE, simulate_coil_maps(4, SHAPE))
    x = _smooth_phantom(torch.complex128)
    assert _relative(coils.zero_filled(coils(x)).abs(), x.abs()) <= ZERO_FILLED_TOLERANCE


def test_bad_inputs_are_value_errors():
    trajectory = radial_trajectory(4, 8)
    for call, match in [
        (lambda: radial_trajectory(4, 8, "spiral"), "kind"),
        (lambda: radial_trajectory(0, 8), "spokes"),
        (lambda: radial_trajectory(4), "readout"),
        (lambda: RadialNUFFT(trajectory.T, SHAPE), "trajectory"),
        (lambda: RadialNUFFT(4 * trajectory, SHAPE), r"\[-pi, pi\]"),
        (lambda: RadialNUFFT(trajectory, (0, 4)), "shape"),
        (lambda: RadialNUFFT(trajectory, SHAPE, torch.ones(4, 5, 6)), "coil maps"),
        (lambda: OPERATORS["single-coil"](torch.zeros(1, 5, 6, dtype=torch.complex64)), "images"),
        (lambda: OPERATORS["shared maps"].adjoint(torch.zeros(1, SPOKES * READOUT, dtype=torch.complex64)),
         "samples"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
