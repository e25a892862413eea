import numpy as np
import pytest
import torch

from lpam.physics.fourier import MaskedFourier, fft2c, ifft2c


def random_complex(*shape, device="cpu"):
    return torch.randn(*shape, dtype=torch.complex128, device=device)


def test_fft2c_matches_numpy():
    x = random_complex(3, 10, 13)
    expected = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x.numpy(), axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(fft2c(x).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(ifft2c(fft2c(x)).numpy(), x.numpy(), atol=1e-12)


def test_adjointness_and_norm(device):
    torch.manual_seed(0)
    mask = torch.rand(2, 12, 15, device=device) < 0.4
    op = MaskedFourier(mask)
    x, y = random_complex(2, 12, 15, device=device), random_complex(2, 12, 15, device=device)
    lhs = torch.vdot(op(x).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), op.adjoint(y).flatten())
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    v = random_complex(2, 12, 15, device=device)  # power iteration on A^H A
    for _ in range(50):
        v = op.normal(v)
        v = v / v.norm()
    assert op.normal(v).norm() <= 1 + 1e-9


def test_data_gradient_is_autograd_gradient():
    mask = torch.rand(9, 8) < 0.5
    mask[0, 0] = True
    op = MaskedFourier(mask)
    x = random_complex(1, 9, 8).requires_grad_(True)
    y = op(random_complex(1, 9, 8))
    op.data_fidelity(x, y).sum().backward()
    torch.testing.assert_close(x.grad, op.data_gradient(x.detach(), y))


def test_mask_errors():
    with pytest.raises(ValueError, match="samples no k-space point"):
        MaskedFourier(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="NaN"):
        MaskedFourier(torch.full((8, 8), float("nan")))
    with pytest.raises(ValueError, match="spatial shape"):
        MaskedFourier(torch.ones(8, 8))(random_complex(1, 8, 9))
