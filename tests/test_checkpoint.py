"""Inference options written into a checkpoint (lpam.checkpoint.set_inference_options): weights untouched."""
import pytest
import torch

from lpam.checkpoint import load_checkpoint, load_model, save_checkpoint, set_inference_options
from lpam.models.lpam_net import LPAMNet, LPAMNetConfig
from lpam.models.unet import ResidualUNet, UNetConfig


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_checkpoint(path, LPAMNet(LPAMNetConfig(phases=2, features=8)))
    return path


def test_inference_options_change_only_the_options(checkpoint):
    before = load_model(checkpoint)
    config = set_inference_options(checkpoint, {"convergent_phases": 6, "learned_backtracks": 2})
    after = load_model(checkpoint)  # the checksum of the tensors still holds
    assert config["convergent_phases"] == 6 and after.config.default_phases("convergent") == 6
    assert after.constants.learned_backtracks == 2 and after.config.constants["learned_backtracks"] == 2
    assert after.constants.a == before.constants.a
    for name, tensor in before.state_dict().items():
        assert torch.equal(tensor, after.state_dict()[name])


@pytest.mark.parametrize("changes, message", [
    ({"phases": 4}, "unknown inference option"),
    ({"features": 16}, "unknown inference option"),
    ({"convergent_phases": 0}, "convergent_phases must be a whole number"),
    ({"learned_backtracks": -1}, "learned_backtracks"),
])
def test_bad_inference_options_leave_the_file_as_it_was(checkpoint, changes, message):
    before = checkpoint.read_bytes()
    with pytest.raises(ValueError, match=message):
        set_inference_options(checkpoint, changes)
    assert checkpoint.read_bytes() == before


def test_inference_options_apply_to_lpam_net_only(tmp_path):
    path = tmp_path / "unet.pt"
    save_checkpoint(path, ResidualUNet(UNetConfig(channels=4, pools=1)))
    with pytest.raises(ValueError, match="unet model"):
        set_inference_options(path, {"convergent_phases": 3})
    assert "convergent_phases" not in load_checkpoint(path)["model_config"]
