import pytest
import torch

from lpam.data.embedded import SPLITS, load_split, simulate_kspace
from lpam.physics.fourier import fft2c


def test_splits_are_slabs_with_gaps():
    assert len(SPLITS["test"]) >= 16
    slabs = sorted(SPLITS["train"] + SPLITS["val"] + SPLITS["test"])
    assert len(slabs) == len(set(slabs))
    owner = {z: name for name, zs in SPLITS.items() for z in zs}
    for a, b in zip(slabs, slabs[1:]):
        if owner[a] != owner[b]:
            assert b - a > 4  # at least 4 unused slices between splits


def test_load_split_shapes_and_range():
    data = load_split("test")
    assert data.images.shape == (len(SPLITS["test"]), 2, 160, 180)
    assert data.images.dtype == torch.float32
    assert 0 <= float(data.images.min()) and float(data.images.max()) <= 1
    assert float(data.images.max()) > 0.5
    assert data.contrasts == ("T1", "T2")
    assert load_split("validation", contrasts=["T2"], slices=slice(0, 3)).images.shape == (3, 1, 160, 180)
    assert load_split("train", slices=[0, -1]).axial_indices == [SPLITS["train"][0], SPLITS["train"][-1]]


def test_simulated_kspace():
    images = load_split("test", slices=[0, 1]).images
    mask = torch.rand(160, 180) < 0.3
    clean = simulate_kspace(images, mask)
    torch.testing.assert_close(clean, fft2c(images.to(torch.complex64)) * mask)
    noisy = simulate_kspace(images, torch.ones(160, 180), noise_std=0.05, seed=3)
    measured = (noisy - fft2c(images.to(torch.complex64))).abs().square().mean().sqrt()
    assert abs(float(measured) - 0.05) < 0.002
    torch.testing.assert_close(noisy, simulate_kspace(images, torch.ones(160, 180), noise_std=0.05, seed=3))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: load_split("holdout"), "unknown split"),
        (lambda: load_split("test", contrasts=["FLAIR"]), "unknown contrast"),
        (lambda: load_split("test", slices=[100]), "outside"),
        (lambda: load_split("test", slices=slice(5, 5)), "selects no slice"),
        (lambda: simulate_kspace(torch.zeros(1, 8, 8), torch.ones(8, 9)), "does not match"),
        (lambda: simulate_kspace(torch.full((1, 8, 8), float("nan")), torch.ones(8, 8)), "NaN"),
        (lambda: simulate_kspace(torch.zeros(1, 8, 8), torch.ones(8, 8), noise_std=-1), "noise_std"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
