"""Non-Cartesian (radial NUFFT) physics through the whole package: the autograd of the NUFFT, the radial
MRIPhysics analogue, zero-filling, the data pipeline, the model registry, TV tuning, and every command with
--trajectory end to end on tiny inputs, with their error paths."""
import json

import numpy as np
import pytest
import torch
import yaml

from lpam.cli import main
from lpam.data.augment import AugmentConfig
from lpam.data.transforms import MagnitudeImages, SimulatedCoils, collate, fixed_masks
from lpam.models.lpam_net import LPAMNet, LPAMNetConfig
from lpam.models import shipped
from lpam.physics.mri import MRIPhysics
from lpam.physics.nufft import RadialNUFFT, radial_trajectory
from lpam.physics.radial import RadialMRIPhysics, TrajectorySpec
from lpam.tv_tuning import tuned_tv

SHAPE = (12, 14)
TINY = ("--spokes", 8, "--readout", 24)  # 192 samples per contrast on the 160 x 180 embedded grid


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("adjoint", (False, True))
def test_nufft_autograd_is_the_other_operator(adjoint):
    """The backward of s N is s N^H and vice versa: torch.autograd.gradcheck in float64 on a tiny case."""
    operator = RadialNUFFT(radial_trajectory(3, 4), (4, 5))
    shape = (1, 1, 12) if adjoint else (1, 1, 4, 5)
    values = torch.randn(shape, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    function = operator._nufft_adjoint if adjoint else operator._nufft
    assert torch.autograd.gradcheck(function, (values.requires_grad_(True),), eps=1e-6, atol=1e-8, fast_mode=True)


def test_zero_filled_of_cartesian_physics_is_the_adjoint():
    mask = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(0)) < 0.4
    physics = MRIPhysics(mask, 2)
    y = physics(torch.randn(2, 2, *SHAPE, dtype=torch.complex64))
    assert torch.equal(physics.zero_filled(y), physics.adjoint(y))


def test_radial_physics_interface():
    """zero_filled is the density-compensated adjoint per contrast; sample / batch / to keep the trajectory;
    the data term's Toeplitz gradient equals A^H D (A x - y); bad measurements are named."""
    physics = TrajectorySpec("radial-uniform", 8, 24).physics(SHAPE, 2)
    x = torch.randn(3, 2, *SHAPE, dtype=torch.complex64)
    y = physics(x)
    assert y.shape == (3, 2, 192) and physics.samples == 192 and not physics.cartesian
    torch.testing.assert_close(physics.zero_filled(y)[:, 1], physics.operators[1].zero_filled(y[:, 1]))
    op, z = physics.operators[0], torch.randn(3, *SHAPE, dtype=torch.complex64)
    torch.testing.assert_close(op.data_gradient(y[:, 0])(z), op.data_fidelity_gradient(z, y[:, 0]),
                               rtol=1e-4, atol=1e-4)
    assert physics.sample(1) is physics and physics.to("cpu") is physics
    physics.check(y)
    for bad, match in [(y[..., :-1], "K = 192"), (y[:, :1], "contrasts"), (y.real, "complex"), (y[0], "shape")]:
        with pytest.raises(ValueError, match=match):
            physics.check(bad)


def test_transforms_measure_on_the_trajectory_and_collate():
    """A trajectory draw gives radial samples y = A x (+ noise, seeded), coils with SimulatedCoils; collate
    stacks them with the shared trajectory."""
    images = torch.rand(2, 2, *SHAPE)
    spec = TrajectorySpec("radial-golden", 8, 24)
    single = MagnitudeImages(images, AugmentConfig(enabled=False), fixed_masks(spec))
    samples = [single(i, np.random.default_rng(i)) for i in range(2)]
    kspace, physics, target = collate(samples)
    assert isinstance(physics, RadialMRIPhysics) and kspace.shape == (2, 2, 192) and target.shape == (2, 2, *SHAPE)
    torch.testing.assert_close(kspace, physics(images.to(torch.complex64)))
    again = collate([single(i, np.random.default_rng(i)) for i in range(2)])[0]
    assert torch.equal(kspace, again)
    coils = collate([SimulatedCoils(single, 3)(i, np.random.default_rng(i)) for i in range(2)])
    assert coils[0].shape == (2, 2, 3, 192) and coils[1].multi_coil and coils[1].num_coils == 3


def test_lpam_net_runs_and_trains_on_radial_physics():
    """LPAM-net starts from the density-compensated image; gradients reach its weights through the NUFFT."""
    torch.manual_seed(0)
    model = LPAMNet(LPAMNetConfig(phases=2, features=8))
    physics = TrajectorySpec("radial-golden", 8, 24).physics(SHAPE, 2)
    y = physics(torch.rand(1, 2, *SHAPE).to(torch.complex64))
    out = model(y, physics, mode="convergent")
    out.abs().sum().backward()
    assert out.shape == (1, 2, *SHAPE) and model.g[0].weight_real[0].grad.abs().sum() > 0


def test_shipped_registry_and_tv_table_for_trajectories(monkeypatch):
    """The golden-angle 64-spoke network is chosen exactly for its trajectory, as the nearest (with a warning)
    for other spoke counts and uniform spokes, never for a mask; without a trajectory model the radial mask
    default is taken with a warning. TV weights: tuned entry or nearest."""
    golden = TrajectorySpec("radial-golden", 64)
    path, _, warning = shipped.default_model(golden)
    assert path.name == "lpam_net_joint_golden64.pt" and path.is_file() and warning is None
    for other in (TrajectorySpec("radial-golden", 32), TrajectorySpec("radial-uniform", 64)):
        path, _, warning = shipped.default_model(other)
        assert path.name == "lpam_net_joint_golden64.pt" and other.label() in warning
    assert shipped.shipped_model_for(shipped.MaskSpec())[0].weights == "lpam_net_joint_radial20.pt"
    monkeypatch.setattr(shipped, "SHIPPED", tuple(m for m in shipped.SHIPPED if m.trajectory is None))
    path, _, warning = shipped.default_model(golden)
    assert path.name == "lpam_net_joint_radial20.pt" and "radial-golden-64" in warning
    lam, eps0, note = tuned_tv(golden)
    assert note is None and lam > 0 and eps0 > 0
    assert "radial-golden-64" in tuned_tv(TrajectorySpec("radial-golden", 40))[2]


def test_solve_evaluate_and_benchmark_on_a_trajectory(tmp_path, capsys):
    code, text, err = run(capsys, "solve", "--trajectory", "radial-golden", *TINY, "--slices", "0:1",
                          "--iterations", 3, "--quiet", "--out", tmp_path / "solve")
    assert code == 0, err
    metrics = json.loads((tmp_path / "solve" / "metrics.json").read_text())
    assert metrics["mask"] == {"kind": "radial-golden", "spokes": 8, "readout": 24, "samples": 192,
                               "achieved_rate": 192 / (160 * 180)}
    assert {"recon.npy", "figure.png", "convergence.png", "history.json"} <= {p.name for p in (tmp_path / "solve").iterdir()}
    code, text, err = run(capsys, "evaluate", "--trajectory", "radial-golden", *TINY, "--slices", "0:1",
                          "--quiet", "--out", tmp_path / "evaluate")
    assert code == 0, err
    assert "radial-golden-8x24" in err and "warning" in err  # the radial default stands in, with a warning
    assert "radial-golden" in text
    code, text, err = run(capsys, "benchmark", "--masks", "radial-golden-64", "--methods", "zero-filled", "joint-tv",
                          "--slices", "0:1", "--tv-iterations", 2, "--quiet", "--out", tmp_path / "bench")
    assert code == 0, err
    bench = json.loads((tmp_path / "bench" / "metrics.json").read_text())
    assert set(bench["methods"]["joint-tv"]) == {"radial-golden-64"}
    assert (tmp_path / "bench" / "grid_radial-golden-64.png").is_file()


def test_train_with_a_trajectory(tmp_path, capsys):
    config = {"model": {"phases": 1, "features": 8},
              "data": {"trajectory": {"kind": "radial-golden", "spokes": 8, "readout": 24}},
              "train": {"schedule": [{"phases": 1, "epochs": 1}], "steps_per_epoch": 1, "val_slices": 1}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = run(capsys, "train", "--config", path, "--quiet", "--out", tmp_path / "run")
    assert code == 0, err
    stored = torch.load(tmp_path / "run" / "best.pt", weights_only=False)["train_config"]["data"]
    assert stored["trajectory"] == {"kind": "radial-golden", "spokes": 8, "readout": 24} and "mask" not in stored


def test_reconstruct_on_a_trajectory(tmp_path, capsys):
    """Images measured on --trajectory; k-space samples (K,) and (Nc, K) on a --trajectory-file."""
    images = np.random.default_rng(0).random((2, 16, 18)).astype(np.float32)
    paths = [tmp_path / f"{c}.npy" for c in ("T1", "T2")]
    for path, image in zip(paths, images):
        np.save(path, image)
    code, _, err = run(capsys, "reconstruct", *paths, "--trajectory", "radial-golden", *TINY, "--quiet",
                       "--out", tmp_path / "images")
    assert code == 0, err
    assert json.loads((tmp_path / "images" / "metrics.json").read_text())["mask"]["achieved_rate"] == 192 / (16 * 18)
    trajectory = radial_trajectory(8, 24)
    np.save(tmp_path / "trajectory.npy", trajectory.T.numpy())  # (K, 2)
    physics = RadialMRIPhysics(trajectory, (16, 18), 2, torch.ones(2, 16, 18) / 2 ** 0.5)
    coil_kspace = physics(torch.from_numpy(images)[None].to(torch.complex64))[0].numpy()  # (C, Nc, K)
    for name, samples in (("single", coil_kspace[:, 0]), ("coils", coil_kspace)):
        kspace_paths = [tmp_path / f"{name}_{c}.npy" for c in ("T1", "T2")]
        for path, array in zip(kspace_paths, samples):
            np.save(path, array)
        code, text, err = run(capsys, "reconstruct", *kspace_paths, "--input-type", "kspace", "--trajectory-file",
                              tmp_path / "trajectory.npy", "--image-size", 16, 18, "--quiet", "--out", tmp_path / name)
        assert code == 0, err
        assert (tmp_path / name / "T2_zero_filled.nii.gz").is_file()


BAD = [
    (("solve", "--trajectory", "radial-golden", "--mask", "radial"), "conflict"),
    (("solve", "--spokes", 16), "need --trajectory"),
    (("solve", "--trajectory", "radial-golden", "--spokes", 0), "spokes"),
    (("solve", "--trajectory", "radial-golden", "--readout", 1), "readout"),
    (("evaluate", "--trajectory", "radial-golden", "--mask-file", "m.npy"), "conflict"),
    (("evaluate", "--trajectory", "radial-golden", "--coils", 2, "--estimate-maps", "lowres"), "Cartesian"),
    (("reconstruct", "T1.npy", "T2.npy", "--input-type", "kspace", "--trajectory", "radial-golden"), "--image-size"),
    (("reconstruct", "T1.npy", "T2.npy", "--trajectory-file", "t.txt"), ".npy"),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_trajectory_errors(tmp_path, capsys, argv, message):
    for name in ("T1.npy", "T2.npy"):
        np.save(tmp_path / name, np.zeros((16, 18), np.complex64))
    argv = [tmp_path / a if str(a) in ("T1.npy", "T2.npy") else a for a in argv]
    code, _, err = run(capsys, *argv, "--quiet", "--out", tmp_path / "out")
    assert code == 2 and f"lpam {argv[0]}: error:" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data, message", [
    ({"trajectory": {"kind": "radial-golden"}, "mask": {"kind": "radial"}}, "exclude each other"),
    ({"trajectory": {"kind": "spiral"}}, "unknown trajectory"),
    ({"trajectory": {"spokes": 0}}, "data.trajectory spokes"),
    ({"trajectory": {"spokes": 8, "turns": 2}}, "turns"),
])
def test_trajectory_config_errors(tmp_path, capsys, data, message):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data": data}))
    code, _, err = run(capsys, "train", "--config", path, "--quiet", "--out", tmp_path / "run")
    assert code == 2 and message in err and "Traceback" not in err
