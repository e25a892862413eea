import numpy as np
import torch

from lpam.data.augment import AugmentConfig, augment_images, gaussian_blur, random_phase, rotate_and_zoom


def test_augmentation_is_seeded_and_keeps_shapes():
    images = torch.rand(2, 40, 50)
    config = AugmentConfig()
    a = augment_images(images, config, np.random.default_rng(7))
    b = augment_images(images, config, np.random.default_rng(7))
    assert a.shape == images.shape and torch.equal(a, b)
    assert not torch.equal(a, augment_images(images, config, np.random.default_rng(8)))
    assert torch.equal(augment_images(images, AugmentConfig(enabled=False), np.random.default_rng(7)), images)


def test_geometry_and_blur():
    images = torch.rand(3, 32, 36)
    torch.testing.assert_close(rotate_and_zoom(images, 0.0, 1.0), images, atol=1e-5, rtol=0)
    quarter = rotate_and_zoom(torch.ones(1, 33, 33), 90.0)
    assert quarter[0, 16, 16] > 0.99
    blurred = gaussian_blur(images, 1.0)
    assert blurred.std() < images.std()
    assert abs(float(blurred.mean() - images.mean())) < 0.01


def test_random_phase_keeps_magnitudes():
    images = torch.rand(2, 16, 16)
    phased = random_phase(images, AugmentConfig(phase_probability=1.0), np.random.default_rng(0))
    assert phased.is_complex()
    torch.testing.assert_close(phased.abs(), images, atol=1e-6, rtol=1e-6)
