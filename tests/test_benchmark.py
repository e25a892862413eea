"""The U-Net baseline, `lpam evaluate` and `lpam benchmark` (tiny models, few slices), and --retrain."""
import copy
import json

import numpy as np
import pytest
import torch

from lpam import evaluation
from lpam.evaluation.report import results_markdown
from lpam.evaluation.scoring import zero_filled
from lpam.methods import METHODS
from lpam.models import shipped as shipped_module
from lpam.checkpoint import load_model, save_checkpoint
from lpam.cli import main
from lpam.data.embedded import load_split, simulate_kspace
from lpam.models.lpam_net import LPAMNet, LPAMNetConfig
from lpam.models.unet import ResidualUNet, UNetConfig
from lpam.physics.masks import MaskSpec
from lpam.physics.mri import MRIPhysics
from lpam.training.config import TrainConfig

TINY_TRAIN = {"schedule": [{"phases": 1, "epochs": 1}], "steps_per_epoch": 1, "val_slices": 1, "lr": 1e-3}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_unet_starts_as_data_consistent_zero_filled_and_keeps_measured_kspace():
    images = load_split("test", slices=[0]).images
    mask = MaskSpec().build((160, 180))
    kspace, physics = simulate_kspace(images, mask), MRIPhysics(mask, 2)
    model = ResidualUNet(UNetConfig(channels=4, pools=2))
    with torch.no_grad():
        out = model(kspace, physics)
        torch.testing.assert_close(out, zero_filled(kspace, physics), atol=1e-5, rtol=0)
        torch.nn.init.normal_(model.output.weight, std=0.1)
        out = model(kspace, physics)
    from lpam.physics.fourier import fft2c

    torch.testing.assert_close(fft2c(out) * mask, kspace, atol=1e-4, rtol=0)  # data consistency
    assert out.shape == kspace.shape
    with pytest.raises(ValueError, match="no convergent mode"):
        model(kspace, physics, mode="convergent")


CARTESIAN_POOL = {"kind": "cartesian-random", "rate": None, "acceleration": 4, "pool": 2,
                  "mix": [{"kind": "cartesian-equispaced", "rate": None, "acceleration": 8}]}


def tiny_checkpoints(folder):
    """Tiny untrained models saved with a tiny train_config, as the shipped weights would be."""
    torch.manual_seed(0)
    configs = {
        "lpam_net_joint_radial20_plain.pt": {"model": {"phases": 1, "features": 8}},
        "lpam_net_joint_radial20.pt": {"model": {"phases": 1, "features": 8, "step_rule": "descent",
                                                            "reg_weight_init": 0.01, "padding": "circular"}},
        "lpam_net_separate_radial20.pt": {"model": {"phases": 1, "features": 8, "coupling": "separate"}},
        "unet_joint_radial20.pt": {"model": {"type": "unet", "channels": 4, "pools": 1}},
        "lpam_net_joint3_radial20.pt": {"model": {"phases": 1, "features": 16, "contrasts": 3},
                                        "data": {"contrasts": ["T1", "T2", "PD"]}},
        "lpam_net_joint_cartesian.pt": {"model": {"phases": 1, "features": 8, "step_rule": "descent",
                                                  "reg_weight_init": 0.01, "padding": "circular"},
                                        "data": {"mask": CARTESIAN_POOL}},
        "unet_joint_cartesian.pt": {"model": {"type": "unet", "channels": 4, "pools": 1},
                                    "data": {"mask": CARTESIAN_POOL}},
    }
    for name, raw in configs.items():
        data = {"mask": {"kind": "radial", "rate": 0.2, "pool": 2}, **raw.get("data", {})}
        config = TrainConfig.from_dict({"model": raw["model"], "data": data, "train": copy.deepcopy(TINY_TRAIN)})
        from lpam.models.registry import build_model

        save_checkpoint(folder / name, build_model(config.model), extra={"train_config": config.to_dict()})
    return folder


def test_benchmark_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped_module, "WEIGHTS_DIR", tiny_checkpoints(tmp_path / "weights"))
    masks = ["radial-0.20", "cartesian-random-8x"]
    metrics = evaluation.run_benchmark(tmp_path / "bench", masks, slices=slice(0, 4), subset_every=2,
                                       tv_iterations=3, progress=False, tv_pd_iterations=3)
    assert set(metrics["methods"]) == set(METHODS) - {"lpam-net-3c"}  # the T1, T2 methods
    for method, per_mask in metrics["methods"].items():
        # the radial network's transfer row runs only where another network is the mask's default (Cartesian)
        run_on = ["cartesian-random-8x"] if method == "lpam-net-radial" else masks
        assert set(per_mask) == set(run_on)
        for mask in run_on:
            for contrast in ("T1", "T2"):
                assert set(per_mask[mask][contrast]) == {"psnr", "ssim", "nmse", "rmse"}
                assert np.isfinite(per_mask[mask][contrast]["psnr"]["mean"])
            assert metrics["seconds_per_pair"][method][mask] >= 0
    assert metrics["evaluated_on"]["joint-tv"] == {"radial-0.20": "all", "cartesian-random-8x": "subset"}
    assert metrics["evaluated_on"]["lpam-net-convergent"]["radial-0.20"] == "all"
    assert metrics["off_mask"]["lpam-net"] == ["cartesian-random-8x"]
    assert "zero-filled" not in metrics["params"] and all(n > 0 for n in metrics["params"]["unet-joint"].values())
    results = (tmp_path / "bench" / "results.md").read_text()
    assert "lpam-net †" in results and "**" in results and "## cartesian-random-8x" in results
    for name in ("grid_radial-0.20.png", "grid_cartesian-random-8x.png", "psnr_vs_rate.png",
                 "convergent_phases.png", "history_convergent.json", "metrics.json"):
        assert (tmp_path / "bench" / name).is_file(), name


def test_three_contrast_benchmark(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped_module, "WEIGHTS_DIR", tiny_checkpoints(tmp_path / "weights"))
    metrics = evaluation.run_benchmark(tmp_path / "bench3", ["radial-0.20"], slices=slice(0, 2), tv_iterations=3,
                                       progress=False, contrasts=("T1", "T2", "PD"), tv_pd_iterations=3)
    assert set(metrics["methods"]) == {"zero-filled", "joint-tv", "separate-tv", "joint-tv-pd", "lpam-net-3c"}
    assert np.isfinite(metrics["methods"]["lpam-net-3c"]["radial-0.20"]["PD"]["psnr"]["mean"])
    assert "PD PSNR" in (tmp_path / "bench3" / "results.md").read_text()
    with pytest.raises(ValueError, match="reconstruct other contrasts"):
        evaluation.run_benchmark(tmp_path / "bad", ["radial-0.20"], ["lpam-net"], contrasts=("T1", "T2", "PD"))


def test_results_markdown_bolds_the_best_value():
    metric = lambda psnr: {c: {"psnr": {"mean": psnr, "std": 0.1}, "ssim": {"mean": psnr / 100, "std": 0.01}}
                           for c in ("T1", "T2")}
    metrics = {"masks": {"radial-0.20": {"achieved_rate": 0.2}},
               "methods": {"a": {"radial-0.20": metric(30.0)}, "b": {"radial-0.20": metric(31.0)}},
               "off_mask": {}, "evaluated_on": {"a": {"radial-0.20": "all"}, "b": {"radial-0.20": "all"}},
               "seconds_per_pair": {"a": {"radial-0.20": 1.0}, "b": {"radial-0.20": 2.0}}, "params": {"b": {"radial-0.20": 5}}}
    table = results_markdown(metrics, ["T1", "T2"], ["note"])
    row_a = next(line for line in table.splitlines() if line.startswith("| a "))
    row_b = next(line for line in table.splitlines() if line.startswith("| b "))
    assert "**" not in row_a and row_b.count("**31.00 ± 0.10**") == 2


def test_retrain_trains_one_model_per_mask_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped_module, "WEIGHTS_DIR", tiny_checkpoints(tmp_path / "weights"))
    masks = ["radial-0.10", "cartesian-random-4x"]
    trained = evaluation.retrain(tmp_path / "bench", masks, ["lpam-net", "lpam-net-convergent", "unet-joint"],
                                 progress=False)
    assert set(trained) == {(m, k) for m in ("lpam-net", "lpam-net-convergent", "unet-joint") for k in masks}
    assert trained[("lpam-net", "radial-0.10")] == trained[("lpam-net-convergent", "radial-0.10")]
    checkpoint = torch.load(trained[("unet-joint", "cartesian-random-4x")], weights_only=False)
    assert checkpoint["train_config"]["data"]["mask"]["acceleration"] == 4.0
    assert isinstance(load_model(trained[("unet-joint", "cartesian-random-4x")]), ResidualUNet)
    again = evaluation.retrain(tmp_path / "bench", masks, ["unet-joint"], progress=False)  # finished runs resume
    assert again[("unet-joint", "radial-0.10")] == trained[("unet-joint", "radial-0.10")]


def test_benchmark_command_classical_methods(tmp_path, capsys):
    out = tmp_path / "bench"
    code, text, _ = run(capsys, "benchmark", "--methods", "zero-filled", "joint-tv", "joint-tv-pd", "--masks",
                        "radial-0.20", "--slices", "0:2", "--tv-iterations", 3, "--tv-pd-iterations", 4, "--quiet",
                        "--out", out)
    assert code == 0 and "| joint-tv |" in text and "| joint-tv-pd |" in text
    assert "joint-tv-pd: joint TV solved to convergence by the Condat-Vu primal-dual algorithm, 4 iterations" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"zero-filled", "joint-tv", "joint-tv-pd"}
    assert (out / "psnr_vs_rate.png").is_file() and (out / "grid_radial-0.20.png").is_file()
    for option, name in (("--subset-every", "subset_every"), ("--tv-iterations", "tv_iterations"),
                         ("--tv-pd-iterations", "tv_pd_iterations")):
        code, _, err = run(capsys, "benchmark", option, 0, "--quiet", "--out", tmp_path / "bad")
        assert code == 2 and f"{name} must be >= 1" in err and not (tmp_path / "bad").exists()


def test_evaluate_command(tmp_path, capsys):
    checkpoint = tmp_path / "tiny.pt"
    torch.manual_seed(0)
    save_checkpoint(checkpoint, LPAMNet(LPAMNetConfig(phases=1, features=8)))
    out = tmp_path / "eval"
    code, text, _ = run(capsys, "evaluate", "--checkpoint", checkpoint, "--split", "val", "--slices", "0:2",
                        "--mask", "cartesian-equispaced", "--acceleration", 4, "--quiet", "--out", out)
    assert code == 0 and "tiny" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"zero-filled", "tiny"} and len(metrics["slices"]) == 2
    assert metrics["methods"]["tiny"]["T2"]["ssim"]["mean"] > 0 and (out / "figure.png").is_file()
    images = tmp_path / "images.npy"
    np.save(images, load_split("test", slices=[0, 1]).images.numpy())
    code, _, _ = run(capsys, "evaluate", "--checkpoint", checkpoint, "--data", images, "--quiet", "--out", tmp_path / "e2")
    assert code == 0 and json.loads((tmp_path / "e2" / "metrics.json").read_text())["slices"] == [0, 1]
    code, _, err = run(capsys, "evaluate", "--checkpoint", checkpoint, "--contrasts", "T1", "T2", "PD", "--quiet",
                       "--out", tmp_path / "e3")
    assert code == 2 and "reconstructs 2 contrasts" in err and not (tmp_path / "e3").exists()


@pytest.mark.parametrize("problem, message", [("shape", "expected images"), ("nan", "finite"), ("missing", "not found")])
def test_evaluate_rejects_bad_data(tmp_path, capsys, problem, message):
    path = tmp_path / "images.npy"
    if problem == "shape":
        np.save(path, np.zeros((2, 160, 180), dtype=np.float32))
    elif problem == "nan":
        np.save(path, np.full((1, 2, 16, 16), np.nan, dtype=np.float32))
    code, _, err = run(capsys, "evaluate", "--data", path, "--quiet", "--out", tmp_path / "out")
    assert code == 2 and message in err and not (tmp_path / "out").exists()


def measured_prepared(path):
    """A tiny prepared dataset with measured k-space: complex 32x32 images (the same two in every split)."""
    from lpam.data.prepared import save_prepared
    from lpam.physics.fourier import ifft2c

    images = load_split("test", slices=[0, 1]).images[..., 40:72, 40:72]  # (2, 2, 32, 32)
    complex_images = ifft2c(simulate_kspace(images * 1j, torch.ones(32, 32))).numpy()
    splits = {split: {"images": np.abs(complex_images), "complex": complex_images, "subjects": ["a", "b"],
                      "slices": [3, 4]} for split in ("train", "val", "test")}
    save_prepared(path, splits, ["T1", "T2"], "h5")
    return images


def test_benchmark_on_prepared_measured_data_and_image_files(tmp_path, capsys):
    images = measured_prepared(tmp_path / "prepared.npz")
    code, text, err = run(capsys, "benchmark", "--data", tmp_path / "prepared.npz", "--split", "test",
                          "--methods", "zero-filled", "joint-tv", "--masks", "radial-0.20", "--tv-iterations", 3,
                          "--quiet", "--out", tmp_path / "bench")
    assert code == 0 and "prepared.npz:test, measured k-space" in text, err
    metrics = json.loads((tmp_path / "bench" / "metrics.json").read_text())
    assert metrics["slices"]["all"] == [0, 1] and metrics["methods"]["joint-tv"]["radial-0.20"]["T2"]["psnr"]["mean"] > 15
    np.save(tmp_path / "images.npy", images.numpy())
    metrics = evaluation.run_benchmark(tmp_path / "bench2", ["radial-0.20"], ["zero-filled"], data=str(tmp_path / "images.npy"),
                                       progress=False)
    assert "simulated from the magnitudes" in (tmp_path / "bench2" / "results.md").read_text()
    assert metrics["methods"]["zero-filled"]["radial-0.20"]["T1"]["ssim"]["mean"] > 0


def test_retrain_on_a_prepared_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped_module, "WEIGHTS_DIR", tiny_checkpoints(tmp_path / "weights"))
    measured_prepared(tmp_path / "prepared.npz")
    trained = evaluation.retrain(tmp_path / "bench", ["radial-0.20"], ["unet-joint"], progress=False,
                                 data=str(tmp_path / "prepared.npz"))
    checkpoint = torch.load(trained[("unet-joint", "radial-0.20")], weights_only=False)
    assert checkpoint["train_config"]["data"]["source"] == str(tmp_path / "prepared.npz")
