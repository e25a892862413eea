"""LPAM-net with a U-Net initial image (initial_image: unet, docs/method.md section 4d): it starts as the
zero-filled network, keeps the scale equivariance, trains end to end and takes a trained U-Net's weights."""
import pytest
import torch

from lpam.algorithm.lpam import History
from lpam.checkpoint import save_checkpoint
from lpam.models.lpam_net import LPAMNet, LPAMNetConfig
from lpam.models.unet import ResidualUNet, UNetConfig
from lpam.physics.fourier import fft2c
from lpam.physics.mri import MRIPhysics
from lpam.training.config import TrainConfig
from lpam.training.warm_start import warm_start_initializer

DESCENT = {"step_rule": "descent", "reg_weight_init": 0.01, "intensity_reference": 0.9, "features": 8}


def sample(size=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(1, 2, size, size, generator=generator)
    mask = torch.rand(size, size, generator=generator) < 0.3
    return fft2c(images.to(torch.complex64)) * mask, MRIPhysics(mask, 2), images


def unet_network(channels=4, pools=2, phases=3) -> LPAMNet:
    torch.manual_seed(0)
    return LPAMNet(LPAMNetConfig(phases=phases, initial_image="unet", initializer_channels=channels,
                                 initializer_pools=pools, **DESCENT))


def awaken(unet: ResidualUNet) -> None:
    """Give the U-Net's output layer (zero at the start) random weights, so that it changes the image."""
    torch.nn.init.normal_(unet.output.weight, std=0.1)


@pytest.mark.parametrize("mode", ["plain", "convergent"])
def test_untrained_unet_initializer_starts_as_the_zero_filled_network(mode):
    """Its output layer starts at zero, so x0 = DC(A^H y) = A^H y on single-coil Cartesian k-space."""
    network = unet_network()
    zero_filled = LPAMNet(LPAMNetConfig(phases=3, **DESCENT))
    zero_filled.load_state_dict({k: v for k, v in network.state_dict().items() if not k.startswith("initializer")})
    kspace, physics, _ = sample()
    with torch.no_grad():
        torch.testing.assert_close(network(kspace, physics, mode=mode), zero_filled(kspace, physics, mode=mode))


@pytest.mark.parametrize("factor", [0.05, 3.0])
def test_unet_initializer_keeps_the_scale_equivariance(factor):
    """The U-Net sees the normalised data, so LPAM-net(c y) = c LPAM-net(y) still holds."""
    network = unet_network()
    awaken(network.initializer)
    kspace, physics, _ = sample()
    with torch.no_grad():
        out, scaled = network(kspace, physics, mode="convergent"), network(factor * kspace, physics, mode="convergent")
    torch.testing.assert_close(scaled, factor * out, rtol=1e-4, atol=1e-5 * float(factor * out.abs().max()))


def test_every_phase_descends_phi_from_the_unet_image():
    """Convergent mode from the U-Net's x0: Phi_eps never rises while eps is constant (each phase an accepted
    learned step or a safeguard step), as from the zero-filled image; a reduced eps may raise the recorded value."""
    network = unet_network(phases=6)
    awaken(network.initializer)
    kspace, physics, _ = sample()
    history = History()
    with torch.no_grad():
        network(kspace, physics, mode="convergent", history=history)
    phi, eps = torch.tensor(history.phi[0], dtype=torch.float64), torch.tensor(history.eps[0])
    constant = eps[1:] == eps[:-1]
    assert constant.any() and set(history.branch[0]) <= {"residual", "safeguard"}
    assert (phi[1:][constant] <= phi[:-1][constant] * (1 + 1e-6)).all()


def test_a_training_step_reaches_the_initializer():
    network = unet_network()
    awaken(network.initializer)
    kspace, physics, images = sample()
    (network(kspace, physics).abs() - images).square().mean().backward()
    for name, parameter in network.initializer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def unet_checkpoint(path, channels=4, pools=2, contrasts=("T1", "T2"), model_type="unet"):
    torch.manual_seed(1)
    unet = ResidualUNet(UNetConfig(len(contrasts), channels, pools))
    awaken(unet)
    source = unet if model_type == "unet" else LPAMNet(LPAMNetConfig(phases=2, features=8))
    save_checkpoint(path, source, extra={"train_config": {"data": {"contrasts": list(contrasts)}}})
    return unet


def test_initializer_takes_a_trained_unets_weights(tmp_path):
    """After train.initializer_from, x0 is the U-Net's reconstruction of the normalised measurements."""
    unet = unet_checkpoint(tmp_path / "unet.pt")
    network = unet_network()
    warm_start_initializer(network, tmp_path / "unet.pt", ["T1", "T2"])
    kspace, physics, _ = sample()
    scale = network.intensity_scale(physics.zero_filled(kspace))
    normalised = kspace / scale.to(kspace.dtype)
    with torch.no_grad():
        torch.testing.assert_close(network.initial_image(normalised, physics), unet(normalised, physics))


@pytest.mark.parametrize("case, message", [
    ({"channels": 8}, "initializer_channels"),
    ({"pools": 3}, "initializer_pools"),
    ({"contrasts": ("T2", "T1")}, "trained on contrasts"),
    ({"model_type": "lpam-net"}, "must be a U-Net checkpoint"),
])
def test_initializer_from_a_mismatched_checkpoint_is_refused(tmp_path, case, message):
    unet_checkpoint(tmp_path / "other.pt", **case)
    with pytest.raises(ValueError, match=message):
        warm_start_initializer(unet_network(), tmp_path / "other.pt", ["T1", "T2"])


def test_initializer_from_needs_a_unet_initial_image(tmp_path):
    unet_checkpoint(tmp_path / "unet.pt")
    with pytest.raises(ValueError, match="initial_image 'unet'"):
        warm_start_initializer(LPAMNet(LPAMNetConfig(phases=2, features=8)), tmp_path / "unet.pt", ["T1", "T2"])
    with pytest.raises(ValueError, match="initial_image 'unet'"):
        TrainConfig.from_dict({"model": {"phases": 2}, "train": {"schedule": [{"phases": 2, "epochs": 1}],
                                                                  "initializer_from": str(tmp_path / "unet.pt")}})


@pytest.mark.parametrize("values, message", [({"initializer_channels": 0}, "channels >= 1"),
                                             ({"initializer_pools": -1}, "pools >= 0")])
def test_bad_initializer_sizes_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        LPAMNetConfig(initial_image="unet", **values)
