"""The shipped weights load on a fresh install and reconstruct the embedded data better than zero-filled."""
import pytest
import torch

from lpam.checkpoint import load_checkpoint, load_model
from lpam.data.embedded import load_split, simulate_kspace
from lpam.evaluation import LEARNED, WEIGHTS
from lpam.metrics import evaluate_contrasts
from lpam.models.lpam_net import count_parameters
from lpam.physics.masks import MaskSpec
from lpam.problem import zero_filled

EXPECTED = {  # file: (model type, coupling, parameter range)
    "lpam_net_joint_radial20.pt": ("lpam-net", "joint", (50_000, 60_000)),
    "lpam_net_separate_radial20.pt": ("lpam-net", "separate", (100_000, 120_000)),
    "unet_joint_radial20.pt": ("unet", None, (1_000_000, 3_000_000)),
}


def test_every_learned_method_has_shipped_weights():
    assert {method.weights for method in LEARNED.values()} == set(EXPECTED)


@pytest.mark.parametrize("weights", sorted(EXPECTED))
def test_shipped_weights_reconstruct_a_test_slice(weights):
    model_type, coupling, (low, high) = EXPECTED[weights]
    payload = load_checkpoint(WEIGHTS / weights)
    assert payload.get("model_type", "lpam-net") == model_type
    assert coupling is None or payload["model_config"]["coupling"] == coupling
    assert "train_config" in payload  # the exact config that produced them
    model = load_model(WEIGHTS / weights)
    assert low < count_parameters(model) < high
    images = load_split("test", slices=[10]).images
    mask = MaskSpec().build((160, 180))
    kspace = simulate_kspace(images, mask)
    with torch.no_grad():
        recon = model(kspace, mask)
    net = evaluate_contrasts(recon.numpy(), images.numpy(), ["T1", "T2"])
    baseline = evaluate_contrasts(zero_filled(kspace, mask).numpy(), images.numpy(), ["T1", "T2"])
    for contrast in ("T1", "T2"):
        assert net[contrast]["psnr"]["mean"] > baseline[contrast]["psnr"]["mean"] + 2.0
        assert net[contrast]["ssim"]["mean"] > baseline[contrast]["ssim"]["mean"]
