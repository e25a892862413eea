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


def test_mask_errors():
    with pytest.raises(ValueError, match="samples no k-space point"):
        MaskedFourier(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="NaN"):
        MaskedFourier(torch.full((8, 8), float("nan")))
    with pytest.raises(ValueError, match="spatial shape"):
        MaskedFourier(torch.ones(8, 8))(random_complex(1, 8, 9))
