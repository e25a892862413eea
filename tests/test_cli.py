"""Every CLI command end to end on tiny inputs, and its error paths (exit code 2, a message, no output)."""
import json

import nibabel
import numpy as np
import pytest
import torch

from lpam.checkpoint import save_checkpoint
from lpam.cli import main
from lpam.data.embedded import load_split
from lpam.models.lpam_net import LPAMNet, LPAMNetConfig


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.manual_seed(0)
    save_checkpoint(path, LPAMNet(LPAMNetConfig(phases=2, features=8)))
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_mask_command(tmp_path, capsys):
    code, out, _ = run(capsys, "mask", "--kind", "radial", "--rate", 0.2, "--shape", 160, 180, "--out", tmp_path / "m.npy")
    assert code == 0
    mask = np.load(tmp_path / "m.npy")
    assert mask.shape == (160, 180) and abs(mask.mean() - 0.2) <= 0.01
    assert (tmp_path / "m.png").is_file()
    code, _, err = run(capsys, "mask", "--kind", "radial", "--rate", 1.5, "--out", tmp_path / "bad.npy")
    assert code == 2 and "rate" in err and not (tmp_path / "bad.npy").exists()


def test_solve_command(tmp_path, capsys):
    out = tmp_path / "solve"
    code, text, _ = run(capsys, "solve", "--regularizer", "joint-tv", "--mask", "radial", "--rate", 0.2,
                        "--split", "test", "--slices", "0:2", "--iterations", 8, "--quiet", "--out", out)
    assert code == 0, text
    history = json.loads((out / "history.json").read_text())
    assert len(history["slices"]) == 2
    for key in ("phi", "grad_norm", "eps", "branch", "backtracks"):
        assert len(history["slices"][0][key]) == 8
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"joint-tv", "zero-filled"}
    assert set(metrics["methods"]["joint-tv"]["T1"]) == {"psnr", "ssim", "nmse", "rmse"}
    assert np.load(out / "recon.npy").shape == (2, 2, 160, 180)
    assert (out / "figure.png").is_file() and (out / "convergence.png").is_file()


def test_solve_command_primal_dual(tmp_path, capsys):
    """--solver primal-dual: TV solved by Condat-Vu; every file written, history.json with its own lists."""
    out = tmp_path / "solve-pd"
    code, text, err = run(capsys, "solve", "--solver", "primal-dual", "--slices", "0:2", "--iterations", 12,
                          "--eps0", 0.1, "--quiet", "--out", out)
    assert code == 0, err
    assert "ignored by the primal-dual solver" in err and "--eps0" in err
    assert "12 primal-dual iterations" in text
    history = json.loads((out / "history.json").read_text())
    assert len(history["slices"]) == 2
    for key in ("objective", "primal_change", "dual_change"):
        assert len(history["slices"][1][key]) == 12
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["solver"] == "primal-dual" and metrics["settings"]["iterations"] == 12
    assert len(metrics["primal_dual"]["objective"]) == 2 and "branches" not in metrics
    assert set(metrics["methods"]) == {"joint-tv", "zero-filled"}
    assert np.load(out / "recon.npy").shape == (2, 2, 160, 180)
    assert (out / "figure.png").is_file() and (out / "convergence.png").is_file()


def test_solve_rejects_an_unknown_solver(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["solve", "--solver", "admm", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'admm'" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_solve_with_circular_tv(tmp_path, capsys):
    """--tv-boundary circular: periodic TV differences, consistent with the FFT; the solve still beats zero-filled."""
    out = tmp_path / "solve-circular"
    code, text, _ = run(capsys, "solve", "--slices", "0:1", "--iterations", 30, "--tv-boundary", "circular",
                        "--quiet", "--out", out)
    assert code == 0, text
    methods = json.loads((out / "metrics.json").read_text())["methods"]
    for contrast in ("T1", "T2"):
        assert methods["joint-tv"][contrast]["psnr"]["mean"] > methods["zero-filled"][contrast]["psnr"]["mean"] + 1


def test_solve_with_three_contrasts(tmp_path, capsys):
    """N blocks: T1, T2 and the synthetic PD reconstructed jointly by LPAM with joint TV."""
    out = tmp_path / "solve3"
    code, text, _ = run(capsys, "solve", "--contrasts", "T1", "T2", "PD", "--slices", "0:1", "--iterations", 30,
                        "--quiet", "--out", out)
    assert code == 0 and "PD PSNR" in text
    metrics = json.loads((out / "metrics.json").read_text())["methods"]
    assert np.load(out / "recon.npy").shape == (1, 3, 160, 180)
    for contrast in ("T1", "T2", "PD"):
        assert metrics["joint-tv"][contrast]["psnr"]["mean"] > metrics["zero-filled"][contrast]["psnr"]["mean"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--slices", "a:b"], "--slices"),
        (["--split", "holdout"], "split"),
        (["--iterations", "0"], "max_iterations"),
        (["--lam", "-1"], "lam"),
        (["--mask", "radial", "--rate", "0"], "rate"),
        (["--contrasts", "T1", "FLAIR"], "unknown contrast"),
        (["--contrasts", "T1"], "at least 2 contrasts"),
    ],
)
def test_solve_errors(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, "solve", *argv, "--quiet", "--out", tmp_path / "o")
    assert code == 2 and message in err
    assert not (tmp_path / "o").exists()


def test_unknown_option_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["solve", "--regulariser", "tv", "--out", "x"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_demo_command(tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "demo"
    code, text, _ = run(capsys, "demo", "--checkpoint", tiny_checkpoint, "--slices", "0:2", "--convergent",
                        "--tv-iterations", 20, "--quiet", "--out", out)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"zero-filled", "joint-tv", "lpam-net", "lpam-net-convergent"} == set(metrics["methods"])
    assert "parameters" in text and "lpam-net" in text
    assert (out / "figure.png").is_file() and (out / "convergence.png").is_file()
    history = json.loads((out / "history_convergent.json").read_text())["slices"]
    assert [h["axial_index"] for h in history] == metrics["slices"] and len(history) == 2
    assert all(len(h["phi"]) == metrics["phases"] and len(h["branch"]) == metrics["phases"] for h in history)


def test_demo_rejects_a_corrupt_checkpoint(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "demo", "--checkpoint", corrupt, "--quiet", "--out", tmp_path / "demo")
    assert code == 2 and "corrupt" in err and not (tmp_path / "demo").exists()


def write_inputs(tmp_path, kind):
    images = load_split("test", slices=[0, 1]).images.numpy()  # (2, 2, 160, 180)
    paths = []
    for j, name in enumerate(("T1", "T2")):
        volume = 300.0 * images[:, j]
        if kind == "nifti":
            path = tmp_path / f"{name}.nii.gz"
            nibabel.save(nibabel.Nifti1Image(np.moveaxis(volume, 0, -1), np.eye(4)), str(path))
        elif kind == "kspace":
            path = tmp_path / f"{name}_k.npy"
            np.save(path, np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(volume, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)))
        else:
            path = tmp_path / f"{name}.npy"
            np.save(path, volume)
        paths.append(path)
    return paths


@pytest.mark.parametrize("kind", ["npy", "nifti", "kspace"])
def test_reconstruct_command(tmp_path, capsys, tiny_checkpoint, kind):
    paths = write_inputs(tmp_path, kind)
    out = tmp_path / "out"
    extra = ["--input-type", "kspace"] if kind == "kspace" else []
    code, _, err = run(capsys, "reconstruct", *paths, *extra, "--checkpoint", tiny_checkpoint, "--quiet", "--out", out)
    assert code == 0, err
    volume = nibabel.load(out / "T1_lpam.nii.gz").get_fdata()
    assert volume.shape == ((160, 180, 2) if kind == "nifti" else (2, 160, 180))
    assert (out / "preview.png").is_file()
    assert 100 < volume.max() < 600  # scaled back to the input's units


def test_reconstruct_errors(tmp_path, capsys, tiny_checkpoint):
    t1, t2 = write_inputs(tmp_path, "npy")
    out = tmp_path / "out"
    cases = []
    np.save(tmp_path / "small.npy", np.ones((2, 100, 100)))
    cases.append(([t1, tmp_path / "small.npy"], "do not match"))
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    cases.append(([t1, tmp_path / "corrupt.npy"], "corrupt"))
    nan = np.load(t2)
    nan[0, 5, 5] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    cases.append(([t1, tmp_path / "nan.npy"], "NaN"))
    cases.append(([t1, tmp_path / "missing.npy"], "not found"))
    cases.append(([t1], "2 contrasts"))
    for inputs, message in cases:
        code, _, err = run(capsys, "reconstruct", *inputs, "--checkpoint", tiny_checkpoint, "--quiet", "--out", out)
        assert code == 2 and message in err, (inputs, err)
        assert not out.exists()
    three = tmp_path / "three.pt"
    save_checkpoint(three, LPAMNet(LPAMNetConfig(contrasts=3, phases=1, features=12)))
    code, _, err = run(capsys, "reconstruct", t1, t2, "--checkpoint", three, "--quiet", "--out", out)
    assert code == 2 and "3 contrasts" in err and not out.exists()
    np.save(tmp_path / "empty_mask.npy", np.zeros((160, 180)))
    code, _, err = run(capsys, "reconstruct", t1, t2, "--mask-file", tmp_path / "empty_mask.npy",
                       "--checkpoint", tiny_checkpoint, "--quiet", "--out", out)
    assert code == 2 and "mask" in err and not out.exists()
    code, _, err = run(capsys, "reconstruct", t1, t2, "--input-type", "kspace", "--checkpoint", tiny_checkpoint,
                       "--quiet", "--out", out)
    assert code == 2 and "complex" in err and not out.exists()


def test_unavailable_device_is_a_clear_error(tmp_path, capsys, tiny_checkpoint):
    if torch.cuda.is_available():
        device, message = "tpu", "unknown device"
    else:
        device, message = "cuda", "CUDA is not available"
    code, _, err = run(capsys, "demo", "--checkpoint", tiny_checkpoint, "--device", device, "--quiet", "--out", tmp_path / "d")
    assert code == 2 and message in err


@pytest.mark.parametrize("mode", ["plain", "convergent"])
def test_evaluate_and_reconstruct_say_the_mode_and_phases_they_ran(tmp_path, capsys, tiny_checkpoint, mode):
    """Plain mode at the trained K unless --mode says otherwise; both commands print what ran."""
    options = [] if mode == "plain" else ["--mode", mode]
    paths = write_inputs(tmp_path, "npy")
    code, out, err = run(capsys, "reconstruct", *paths, "--checkpoint", tiny_checkpoint, *options, "--quiet",
                         "--out", tmp_path / "recon")
    assert code == 0, err
    assert f"{mode} mode, 2 phases" in out
    code, out, err = run(capsys, "evaluate", "--checkpoint", tiny_checkpoint, "--slices", "0:1", *options,
                         "--quiet", "--out", tmp_path / "eval")
    assert code == 0, err
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["mode"] == mode
    assert f"mode {mode}" in out


def test_phases_beyond_the_trained_depth(tmp_path, capsys, tiny_checkpoint):
    """--phases N runs demo, evaluate and reconstruct for more phases than trained (2 here); 0 is an error."""
    code, _, err = run(capsys, "demo", "--checkpoint", tiny_checkpoint, "--slices", "0:1", "--convergent",
                       "--phases", 5, "--tv-iterations", 5, "--quiet", "--out", tmp_path / "demo")
    assert code == 0, err
    history = json.loads((tmp_path / "demo" / "history_convergent.json").read_text())["slices"]
    assert len(history[0]["phi"]) == 5
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["phases"] == 5 and metrics["trained_phases"] == 2
    code, _, err = run(capsys, "evaluate", "--checkpoint", tiny_checkpoint, "--slices", "0:1", "--phases", 4,
                       "--mode", "convergent", "--quiet", "--out", tmp_path / "eval")
    assert code == 0, err
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["phases"] == 4
    paths = write_inputs(tmp_path, "npy")
    code, _, err = run(capsys, "reconstruct", *paths, "--checkpoint", tiny_checkpoint, "--phases", 3, "--quiet",
                       "--out", tmp_path / "recon")
    assert code == 0, err
    with pytest.raises(SystemExit) as exit_info:
        run(capsys, "demo", "--checkpoint", tiny_checkpoint, "--phases", 0, "--quiet", "--out", tmp_path / "bad")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--phases" in err and "whole number" in err
    assert not (tmp_path / "bad").exists()
