"""The shipped weights load on a fresh install and reconstruct the embedded data better than zero-filled."""
import torch

from lpam.checkpoint import SHIPPED_WEIGHTS, load_checkpoint, load_model
from lpam.data.embedded import load_split, simulate_kspace
from lpam.metrics import evaluate_contrasts
from lpam.models.lpam_net import count_parameters
from lpam.problem import zero_filled
from lpam.physics.masks import MaskSpec


def test_shipped_weights_reconstruct_a_test_slice():
    payload = load_checkpoint(SHIPPED_WEIGHTS)
    assert payload["model_config"]["coupling"] == "joint"
    assert "train_config" in payload  # the exact config that produced them
    model = load_model()
    assert 50_000 < count_parameters(model) < 60_000
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
