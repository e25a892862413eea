import pytest
import torch

from lpam.data.embedded import SPLIT_SLICES, load_split, simulate_kspace
from lpam.physics.fourier import fft2c


def test_splits_are_disjoint_slabs_with_gaps():
    assert len(SPLIT_SLICES["test"]) == 20 and len(SPLIT_SLICES["val"]) == 10
    owner = {z: name for name, zs in SPLIT_SLICES.items() for z in zs}
    assert len(owner) == sum(len(zs) for zs in SPLIT_SLICES.values())  # disjoint
    assert all(6 <= z <= 160 for z in owner)  # inside the brain's axial extent
    ordered = sorted(owner)
    for below, above in zip(ordered, ordered[1:]):
        if owner[below] != owner[above]:
            assert above - below - 1 >= 4  # at least 4 unused slices between two splits


def test_load_split_shapes_and_range():
    data = load_split("test")
    assert data.images.shape == (20, 2, 160, 180)
    assert data.images.dtype == torch.float32
    assert 0 <= float(data.images.min()) and float(data.images.max()) <= 1
    assert float(data.images.amax(dim=(0, 2, 3)).min()) > 0.5  # both contrasts use the range
    assert data.axial_indices == list(SPLIT_SLICES["test"])
    assert data.contrasts == ("T1", "T2")


def test_selection_aliases_and_contrast_order():
    both = load_split("val")
    t2 = load_split("validation", contrasts="T2", slices=slice(0, 3))
    assert t2.images.shape == (3, 1, 160, 180) and t2.contrasts == ("T2",)
    torch.testing.assert_close(t2.images[:, 0], both.images[:3, 1], rtol=0, atol=0)
    swapped = load_split("val", contrasts=["T2", "T1"], slices=[1])
    torch.testing.assert_close(swapped.images[0], both.images[1].flip(0), rtol=0, atol=0)
    assert load_split("train", slices=[0, -1]).axial_indices == [SPLIT_SLICES["train"][0], SPLIT_SLICES["train"][-1]]


def test_loading_is_deterministic_and_copies():
    first = load_split("test", slices=[3])
    first.images.zero_()  # callers own their tensors; the cached volumes are untouched
    assert torch.equal(load_split("test", slices=[3]).images, load_split("test", slices=[3]).images)
    assert float(load_split("test", slices=[3]).images.max()) > 0.5


def test_noise_free_kspace_is_masked_fft():
    images = load_split("test", slices=[0, 1]).images
    mask = torch.rand(160, 180, generator=torch.Generator().manual_seed(0)) < 0.3
    kspace = simulate_kspace(images, mask)
    assert kspace.dtype == torch.complex64 and kspace.shape == images.shape
    torch.testing.assert_close(kspace, fft2c(images.to(torch.complex64)) * mask)
    per_sample = torch.stack([mask, ~mask])[:, None]  # (2, 1, H, W) broadcasts over the contrasts
    torch.testing.assert_close(simulate_kspace(images, per_sample)[1], fft2c(images[1].to(torch.complex64)) * ~mask)


def test_noise_level_and_seeding():
    images = load_split("test", slices=[0, 1]).images
    full = torch.ones(160, 180)
    noisy = simulate_kspace(images, full, noise_std=0.05, seed=3)
    noise = noisy - fft2c(images.to(torch.complex64))
    assert float(noise.abs().square().mean().sqrt()) == pytest.approx(0.05, rel=0.02)  # E|n|^2 = std^2
    assert float(noise.real.std()) == pytest.approx(0.05 / 2**0.5, rel=0.02)
    assert float(noise.imag.std()) == pytest.approx(0.05 / 2**0.5, rel=0.02)
    assert torch.equal(noisy, simulate_kspace(images, full, noise_std=0.05, seed=3))
    assert not torch.equal(noisy, simulate_kspace(images, full, noise_std=0.05, seed=4))
    assert not torch.equal(noisy, simulate_kspace(images, full, noise_std=0.05, seed=None))
    half = torch.zeros(160, 180, dtype=torch.bool)
    half[:, :90] = True
    assert torch.all(simulate_kspace(images, half, noise_std=0.05)[..., 90:] == 0)  # y = P F x + P n


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: load_split("holdout"), "unknown split"),
        (lambda: load_split("test", contrasts=["FLAIR"]), "unknown contrast"),
        (lambda: load_split("test", contrasts=[]), "unknown contrast"),
        (lambda: load_split("test", slices=[20]), "outside"),
        (lambda: load_split("test", slices=slice(5, 5)), "selects no slice"),
        (lambda: load_split("test", slices=[]), "selects no slice"),
        (lambda: simulate_kspace(torch.zeros(1, 8, 8), torch.ones(8, 9)), "does not match"),
        (lambda: simulate_kspace(torch.zeros(2, 8, 8), torch.ones(3, 8, 8)), "does not match"),
        (lambda: simulate_kspace(torch.zeros(1, 8, 8), torch.ones(8)), "does not match"),
        (lambda: simulate_kspace(torch.full((1, 8, 8), float("nan")), torch.ones(8, 8)), "NaN .* in the images"),
        (lambda: simulate_kspace(torch.zeros(1, 8, 8), torch.full((8, 8), float("nan"))), "NaN .* in the mask"),
        (lambda: simulate_kspace(torch.zeros(1, 8, 8), torch.ones(8, 8), noise_std=-1), "noise_std"),
        (lambda: simulate_kspace(torch.zeros(1, 8, 8), torch.ones(8, 8), noise_std=float("nan")), "noise_std"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_synthetic_pd_contrast():
    data = load_split("test", contrasts=("T1", "T2", "PD"), slices=slice(0, 4))
    assert data.images.shape == (4, 3, 160, 180) and data.contrasts == ("T1", "T2", "PD")
    pd, t1 = data.images[:, 2], data.images[:, 0]
    assert 0 <= float(pd.min()) and 0.5 < float(pd.max()) <= 1
    assert float(pd[t1 <= t1.flatten().quantile(0.05)].mean()) < 0.05  # air (the darkest T1 pixels) stays dark
    assert load_split("test").contrasts == ("T1", "T2")  # the default pair is unchanged
