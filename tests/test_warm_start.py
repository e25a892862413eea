"""Warm start across contrast counts: a 2-contrast LPAM-net starts a 3-contrast one (train.init_from)."""
import pytest
import torch

from lpam.checkpoint import save_checkpoint
from lpam.data.embedded import load_split, simulate_kspace
from lpam.models.lpam_net import LPAMNet, LPAMNetConfig
from lpam.physics.masks import make_mask
from lpam.physics.mri import MRIPhysics
from lpam.training.warm_start import warm_start


def checkpoint(path, contrasts, **config):
    torch.manual_seed(0)
    model = LPAMNet(LPAMNetConfig(contrasts=len(contrasts), phases=2, features=16, g_init="random", **config))
    save_checkpoint(path, model, extra={"train_config": {"data": {"contrasts": list(contrasts)}}})
    return model


def test_known_contrasts_copied_new_filters_zero_new_steps_the_mean(tmp_path):
    source = checkpoint(tmp_path / "two.pt", ["T1", "T2"])
    target = LPAMNet(LPAMNetConfig(contrasts=3, phases=2, features=16))
    assert warm_start(target, tmp_path / "two.pt", ["T2", "PD", "T1"]) == []
    first_in, first_out = source.g[0].weight_real[0], target.g[0].weight_real[0]
    torch.testing.assert_close(first_out[:, 0], first_in[:, 1])
    torch.testing.assert_close(first_out[:, 2], first_in[:, 0])
    assert not first_out[:, 1].any()
    torch.testing.assert_close(target.alpha[:, 2], source.alpha[:, 0])
    torch.testing.assert_close(target.tau[:, 1], source.tau.mean(dim=1))
    torch.testing.assert_close(target.g[0].weight_imag[2], source.g[0].weight_imag[2])


def test_three_contrast_network_starts_as_the_two_contrast_one(tmp_path):
    """The warm-started 3-contrast net gives T1 and T2 exactly what the 2-contrast net gives them."""
    two = checkpoint(tmp_path / "two.pt", ["T1", "T2"])
    three = LPAMNet(LPAMNetConfig(contrasts=3, phases=2, features=16))
    warm_start(three, tmp_path / "two.pt", ["T1", "T2", "PD"])
    images = load_split("test", ("T1", "T2", "PD"), [0]).images
    mask = torch.from_numpy(make_mask("radial", (160, 180), rate=0.2))
    kspace = simulate_kspace(images, mask)
    with torch.no_grad():
        recon3, recon2 = three(kspace, MRIPhysics(mask, 3)), two(kspace[:, :2], MRIPhysics(mask, 2))
    assert recon3.shape == (1, 3, 160, 180) and torch.isfinite(recon3.abs()).all()
    torch.testing.assert_close(recon3[:, :2], recon2, rtol=1e-4, atol=1e-5)


def test_mismatched_architecture_is_an_error(tmp_path):
    checkpoint(tmp_path / "two.pt", ["T1", "T2"])
    with pytest.raises(ValueError, match="only the number of contrasts may differ"):
        warm_start(LPAMNet(LPAMNetConfig(contrasts=3, phases=2, features=32)), tmp_path / "two.pt", ["T1", "T2", "PD"])
    save_checkpoint(tmp_path / "bare.pt", LPAMNet(LPAMNetConfig(phases=2, features=8)))
    with pytest.raises(ValueError, match="does not record the contrasts"):
        warm_start(LPAMNet(LPAMNetConfig(phases=2, features=8)), tmp_path / "bare.pt", ["T1", "T2"])


def test_a_longer_network_starts_as_the_shorter_one_run_longer(tmp_path):
    """Phases past the checkpoint's K repeat its last phase, as the checkpoint's network run for more phases."""
    two_phases = checkpoint(tmp_path / "two.pt", ["T1", "T2"], step_rule="descent", reg_weight_init=0.01)
    four_phases = LPAMNet(LPAMNetConfig(phases=4, features=16, step_rule="descent", reg_weight_init=0.01))
    assert warm_start(four_phases, tmp_path / "two.pt", ["T1", "T2"]) == []
    torch.testing.assert_close(four_phases.alpha[3], two_phases.alpha[1])
    images = load_split("test", slices=[0]).images[..., 60:92, 70:106]
    mask = torch.from_numpy(make_mask("radial", (32, 36), rate=0.3))
    kspace, physics = simulate_kspace(images, mask), MRIPhysics(mask, 2)
    with torch.no_grad():
        longer, run_longer = four_phases(kspace, physics, mode="convergent"), two_phases(kspace, physics, phases=4,
                                                                                            mode="convergent")
    torch.testing.assert_close(longer, run_longer)


def test_added_context_branch_gets_its_own_rate(tmp_path):
    """A network with a context branch warm-started from one without: only the branch is new, and
    train.lr_new gives exactly it its own group in Adam (the trained weights keep lr, the steps lr_steps)."""
    from lpam.training.config import TrainConfig
    from lpam.training.trainer import build_optimizer

    checkpoint(tmp_path / "plain.pt", ["T1", "T2"], step_rule="descent", reg_weight_init=0.01)
    model_options = {"phases": 2, "features": 16, "g_init": "random", "step_rule": "descent",
                     "reg_weight_init": 0.01, "context_dilations": [2, 4]}
    config = TrainConfig.from_dict({
        "model": model_options, "data": {"contrasts": ["T1", "T2"]},
        "train": {"schedule": [{"phases": 2, "epochs": 1}], "init_from": str(tmp_path / "plain.pt"),
                  "lr": 1e-4, "lr_steps": 2e-5, "lr_new": 1e-3}})
    model = LPAMNet(LPAMNetConfig(**model_options))
    assert sorted(warm_start(model, tmp_path / "plain.pt", ["T1", "T2"])) == sorted(
        name for name, _ in model.named_parameters() if ".context_" in name)
    groups = build_optimizer(model, config).param_groups
    branch = {id(p) for name, p in model.named_parameters() if ".context_" in name}
    assert [g["lr"] for g in groups] == [1e-4, 2e-5, 1e-3]
    assert {id(p) for p in groups[2]["params"]} == branch
    assert not branch & {id(p) for p in groups[0]["params"] + groups[1]["params"]}
    with pytest.raises(ValueError, match="lr_new"):
        TrainConfig.from_dict({"model": model_options, "data": {"contrasts": ["T1", "T2"]},
                               "train": {"schedule": [{"phases": 2, "epochs": 1}], "lr_new": 1e-3}})
