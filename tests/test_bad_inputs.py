"""Bad and edge inputs, one group per defect class of issue 13: every user-caused failure is
`lpam <command>: error: ...` naming the problem, exit code 2, no traceback and no output at all; what is
accepted gives the correct result (never silent garbage)."""
import copy
import csv
import os
import re
import subprocess
import sys
import textwrap

import nibabel
import numpy as np
import pytest
import scipy.io
import torch
import yaml

from lpam.checkpoint import CHECKSUM_KEY, load_checkpoint, save_checkpoint
from lpam.cli import main
from lpam.data.embedded import load_split, simulate_kspace
from lpam.data.mask_files import load_mask
from lpam.io import NEW_FILE_MODE, save_json
from lpam.models.lpam_net import LPAMNet, LPAMNetConfig
from lpam.models.unet import ResidualUNet, UNetConfig
from lpam.physics.masks import MaskSpec
from lpam.physics.mri import MRIPhysics
from lpam.training import trainer
from lpam.training.config import TrainConfig
from lpam.workflows import run_network

TINY = {
    "model": {"phases": 2, "features": 8},
    "data": {"mask": {"kind": "radial", "rate": 0.2, "pool": 4}},
    "train": {"schedule": [{"phases": 1, "epochs": 1}, {"phases": 2, "epochs": 1}], "steps_per_epoch": 2,
              "val_slices": 1, "checkpoint_every": 1, "lr": 1e-3, "lr_steps": 1e-4},
}
SHAPE = (64, 72)  # small slices keep the reconstructions fast


def seeded(build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


@pytest.fixture(scope="module")
def lpam_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, seeded(lambda: LPAMNet(LPAMNetConfig(phases=2, features=8))))
    return path


@pytest.fixture(scope="module")
def unet_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "unet.pt"
    save_checkpoint(path, seeded(lambda: ResidualUNet(UNetConfig(channels=4, pools=1))))
    return path


@pytest.fixture(scope="module")
def images():
    """Two test slices (2, 2, 64, 72) in [0, 1]."""
    return load_split("test", slices=[0, 1]).images[..., 48 : 48 + SHAPE[0], 54 : 54 + SHAPE[1]].clone()


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(result, command, message, *absent):
    """Exit 2, `lpam <command>: error:` with ``message`` (a regex), no traceback, none of ``absent`` written."""
    code, _, err = result
    assert code == 2, err
    assert err.startswith(f"lpam {command}: error: ") and re.search(message, err), err
    assert "Traceback" not in err
    for path in absent:
        assert not path.exists(), path
        assert not list(path.parent.glob(f".{path.name}.*")), "a staging or temporary file was left"


def write_config(path, change=None, text=None):
    raw = copy.deepcopy(TINY)
    for section, values in (change or {}).items():
        raw[section].update(values)
    path.write_text(yaml.safe_dump(raw) + (text or ""))
    return path


# --- 1. unnormalised images are refused or normalised, never silently reconstructed ----------------------

SCALINGS = {
    "0-4095": lambda x: 4095 * x,
    "int16": lambda x: (4095 * x).astype(np.int16),
    "negative": lambda x: x - 0.5,
}


@pytest.mark.parametrize("scaling", sorted(SCALINGS))
@pytest.mark.parametrize("command", ["evaluate", "benchmark"])
def test_unnormalised_image_files_are_refused(tmp_path, capsys, lpam_checkpoint, images, scaling, command):
    data = tmp_path / "images.npy"
    np.save(data, SCALINGS[scaling](images.numpy()))
    extra = (["--checkpoint", lpam_checkpoint] if command == "evaluate"
             else ["--methods", "zero-filled", "--masks", "radial-0.20"])
    out = tmp_path / "out"
    result = run(capsys, command, "--data", data, *extra, "--quiet", "--out", out)
    assert_refused(result, command, r"images\.npy: images must be magnitudes scaled to \[0, 1\], got values in", out)


def test_api_normalises_kspace_far_from_the_training_scale(lpam_checkpoint, images):
    """The network sees k-space scaled like its training data and the result is scaled back, with a warning."""
    from lpam.checkpoint import load_model

    model = load_model(lpam_checkpoint)
    mask = MaskSpec().build(SHAPE)
    kspace, physics = simulate_kspace(images, mask), MRIPhysics(mask, 2)
    peaks = physics.adjoint(kspace).abs().amax(dim=(0, 2, 3)).reshape(1, -1, 1, 1)
    expected = run_network(model, kspace / peaks, physics) * peaks
    with pytest.warns(UserWarning, match="far from the training data's scale.*normalised to peak 1"):
        scaled = run_network(model, 4095 * kspace, physics)
    torch.testing.assert_close(scaled / 4095, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scaling", ["0-4095", "negative"])
def test_api_warns_about_unnormalised_images(images, scaling):
    with pytest.warns(UserWarning, match="the models expect images in \\[0, 1\\]"):
        simulate_kspace(torch.from_numpy(SCALINGS[scaling](images.numpy())), MaskSpec().build(SHAPE))


def test_cli_shows_warnings_as_its_own(capsys, monkeypatch, tmp_path):
    import warnings

    import lpam.cli

    monkeypatch.setattr(lpam.cli, "command_mask", lambda args: warnings.warn("k-space scaled far from ..."))
    code, _, err = run(capsys, "mask", "--out", tmp_path / "m.npy")
    assert code == 0 and err == "lpam mask: warning: k-space scaled far from ...\n"


# --- 2. reconstruct reads .mat stacks in MATLAB order (H, W, S), or as --slice-axis says ----------------

@pytest.mark.parametrize("layout", ["matlab", "first"])
def test_reconstruct_reads_mat_stacks_along_the_slice_axis(tmp_path, capsys, lpam_checkpoint, images, layout):
    paths = []
    for j, name in enumerate(("T1", "T2")):
        volume = 300.0 * images[:, j].numpy()  # (S, H, W)
        volume = np.moveaxis(volume, 0, -1) if layout == "matlab" else volume
        scipy.io.savemat(tmp_path / f"{name}.mat", {"image": volume})
        paths.append(tmp_path / f"{name}.mat")
    extra = [] if layout == "matlab" else ["--slice-axis", "first"]
    code, _, err = run(capsys, "reconstruct", *paths, *extra, "--checkpoint", lpam_checkpoint, "--quiet",
                       "--out", tmp_path / "out")
    assert code == 0, err
    volume = nibabel.load(tmp_path / "out" / "T1_lpam.nii.gz").get_fdata()
    assert volume.shape == ((*SHAPE, 2) if layout == "matlab" else (2, *SHAPE))
    metrics = load_json(tmp_path / "out" / "metrics.json")
    assert metrics["slices"] == [0, 1]
    assert metrics["methods"]["lpam-net"]["T1"]["psnr"]["mean"] > 15  # real slices, not strips of 72 x 2


def load_json(path):
    import json

    return json.loads(path.read_text())


# --- 4. file-system failures are errors, and outputs appear together or not at all -----------------------

def test_output_path_problems_are_errors(tmp_path, capsys, lpam_checkpoint):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    folder, npz_folder = tmp_path / "m.npy", tmp_path / "p.npz"
    folder.mkdir()
    npz_folder.mkdir()
    cases = [
        (["evaluate", "--checkpoint", lpam_checkpoint, "--slices", "0:1", "--quiet", "--out", a_file], "evaluate",
         "exists and is not a folder"),
        (["solve", "--iterations", 2, "--slices", "0:1", "--quiet", "--out", a_file / "sub"], "solve",
         "a_file is a file"),
        (["mask", "--rate", 0.2, "--out", folder], "mask", "is a folder"),
        (["prepare", "--data", tmp_path, "--quiet", "--out", npz_folder], "prepare", "is a folder"),
    ]
    for argv, command, message in cases:
        assert_refused(run(capsys, *argv), command, message)
    assert a_file.read_text() == "x" and not any(folder.iterdir()) and not any(npz_folder.iterdir())


def test_read_only_output_folder_is_an_error(tmp_path, capsys, monkeypatch):
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(read_only) else real_access(path, mode))
    result = run(capsys, "solve", "--iterations", 2, "--slices", "0:1", "--quiet", "--out", read_only / "solve")
    assert_refused(result, "solve", "read_only is not writable", read_only / "solve")


def test_a_failing_output_leaves_no_partial_set(tmp_path, capsys, lpam_checkpoint, images, monkeypatch):
    """reconstruct used to write the NIfTIs and then fail on the preview: now nothing appears."""
    import lpam.user_data

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lpam.user_data, "reconstruction_grid", disk_full)
    paths = []
    for j, name in enumerate(("T1", "T2")):
        np.save(tmp_path / f"{name}.npy", images[:, j].numpy())
        paths.append(tmp_path / f"{name}.npy")
    out = tmp_path / "out"
    result = run(capsys, "reconstruct", *paths, "--checkpoint", lpam_checkpoint, "--quiet", "--out", out)
    assert_refused(result, "reconstruct", "No space left on device", out)


# --- 4 and 5. config values are checked by key: type, range, counts ---------------------------------------

@pytest.mark.parametrize("text, key, value", [
    ("train: {lr: 5e-4}", "lr", 5e-4),
    ("train: {lr: 1.0e-4}", "lr", 1e-4),
    ("train: {lr: 2E-3}", "lr", 2e-3),
    ("train: {lr: 1}", "lr", 1.0),
])
def test_numbers_written_the_usual_ways_work(tmp_path, text, key, value):
    raw = yaml.safe_dump({k: v for k, v in TINY.items() if k != "train"})
    path = tmp_path / "config.yaml"
    path.write_text(raw + text.replace("{", "{schedule: [{phases: 1, epochs: 1}, {phases: 2, epochs: 1}], ", 1) + "\n")
    config = TrainConfig.load(path)
    assert getattr(config.train, key) == value and isinstance(getattr(config.train, key), float)


def test_a_quoted_number_is_a_string(tmp_path, capsys):
    raw = yaml.safe_dump({k: v for k, v in TINY.items() if k != "train"})
    path = tmp_path / "config.yaml"
    path.write_text(raw + 'train: {schedule: [{phases: 1, epochs: 1}, {phases: 2, epochs: 1}], lr: "5e-4"}\n')
    out = tmp_path / "run"
    result = run(capsys, "train", "--config", path, "--quiet", "--out", out)
    assert_refused(result, "train", r"train\.lr must be a number, got '5e-4'", out)


@pytest.mark.parametrize("change, message", [
    ({"train": {"lr": "fast"}}, r"train\.lr must be a number, got 'fast'"),
    ({"train": {"lr": -1e-3}}, r"train\.lr must be positive"),
    ({"train": {"ssim_weight": -0.1}}, r"train\.ssim_weight must be >= 0, got -0\.1"),
    ({"train": {"steps_per_epoch": 0}}, r"train\.steps_per_epoch must be a whole number >= 1"),
    ({"train": {"val_slices": 0}}, r"train\.val_slices must be a whole number >= 1"),
    ({"train": {"batch_size": 1.5}}, r"train\.batch_size must be a whole number, got 1\.5"),
    ({"train": {"seed": True}}, r"train\.seed must be a whole number, got True"),
    ({"train": {"schedule": [{"phases": 1, "epochs": "two"}, {"phases": 2, "epochs": 1}]}},
     r"train\.schedule\.epochs must be a whole number, got 'two'"),
    ({"train": {"schedule": [{"phases": 1, "epochs": 0}, {"phases": 2, "epochs": 1}]}}, r"epochs must be >= 1"),
    ({"data": {"augment": {"enabled": "no"}}}, r"data\.augment\.enabled must be true or false, got 'no'"),
    ({"data": {"augment": {"blur_probability": 2}}}, r"data\.augment\.blur_probability must lie in \[0, 1\]"),
    ({"data": {"contrasts": "T1"}}, r"data\.contrasts must be a list of strings, got 'T1'"),
    ({"data": {"contrasts": ["T1", "T1"]}}, r"lists T1 twice"),
    ({"data": {"mask": {"kind": "radial", "rate": 0.2, "pool": 0}}}, r"data\.mask\.pool must be >= 1"),
    ({"model": {"phases": "2"}}, r"model option 'phases' must be a whole number, got '2'"),
    ({"model": {"features": 0}}, r"model\.features must be a whole number >= 1"),
])
def test_bad_config_values_name_key_value_and_expectation(tmp_path, capsys, change, message):
    config = write_config(tmp_path / "config.yaml", change)
    out = tmp_path / "run"
    assert_refused(run(capsys, "train", "--config", config, "--quiet", "--out", out), "train", message, out)


# --- 6. masks hold 0 and 1 only; --mask-file and --mask exclude each other --------------------------------

def test_soft_mask_files_are_refused(tmp_path, capsys, lpam_checkpoint):
    density = np.clip(np.random.default_rng(0).random((160, 180)), 0.05, 0.95)
    np.save(tmp_path / "soft.npy", density)
    out = tmp_path / "out"
    result = run(capsys, "evaluate", "--checkpoint", lpam_checkpoint, "--slices", "0:1", "--mask-file",
                 tmp_path / "soft.npy", "--quiet", "--out", out)
    assert_refused(result, "evaluate", r"soft\.npy: a mask must hold only 0 and 1", out)


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.float32, np.float64])
def test_binary_masks_of_any_dtype_load(tmp_path, dtype):
    mask = MaskSpec().build(SHAPE).numpy()
    stored = mask.astype(dtype)
    if dtype is np.float32:
        stored = stored * np.float32(1 - 1e-7)  # rounding of a stored float mask is tolerated
    np.save(tmp_path / "m.npy", stored)
    loaded = load_mask(tmp_path / "m.npy")
    assert loaded.dtype == bool and np.array_equal(loaded, mask)


@pytest.mark.parametrize("command", ["evaluate", "reconstruct"])
@pytest.mark.parametrize("option", [["--mask", "poisson"], ["--rate", "0.3"], ["--mask-seed", "1"]])
def test_mask_file_conflicts_with_mask_options(tmp_path, capsys, lpam_checkpoint, command, option):
    np.save(tmp_path / "m.npy", MaskSpec().build((160, 180)).numpy())
    inputs = [tmp_path / "T1.npy", tmp_path / "T2.npy"] if command == "reconstruct" else []
    for path in inputs:
        np.save(path, np.ones((160, 180)))
    out = tmp_path / "out"
    result = run(capsys, command, *inputs, "--checkpoint", lpam_checkpoint, "--mask-file", tmp_path / "m.npy",
                 *option, "--quiet", "--out", out)
    assert_refused(result, command, f"--mask-file and {option[0]} conflict", out)


@pytest.mark.parametrize("call", ["physics", "simulate"])
def test_api_refuses_soft_masks(images, call):
    soft = torch.full(SHAPE, 0.3)
    with pytest.raises(ValueError, match="a mask must hold only 0 and 1"):
        if call == "physics":
            MRIPhysics(soft, 2)
        else:
            simulate_kspace(images, soft)


# --- 7. checkpoints: checksum, init_from of another model type, --resume from a model-only file --------

def test_changed_bytes_in_a_checkpoint_are_detected(tmp_path, capsys, lpam_checkpoint):
    payload = load_checkpoint(lpam_checkpoint)
    assert len(payload[CHECKSUM_KEY]) == 64
    payload["model"]["alpha"][0, 0] += 1.0  # the bytes of a tensor changed, the stored checksum kept
    torch.save(payload, tmp_path / "tampered.pt")
    data = bytearray(lpam_checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped in the middle of the file
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    for name, message in (("tampered.pt", "tensors do not match the checksum"), ("flipped.pt", "corrupt")):
        out = tmp_path / "out"
        result = run(capsys, "evaluate", "--checkpoint", tmp_path / name, "--slices", "0:1", "--quiet", "--out", out)
        assert_refused(result, "evaluate", f"{name}.*{message}", out)


def test_init_from_a_checkpoint_of_another_model_type_is_an_error(tmp_path, capsys, unet_checkpoint):
    config = write_config(tmp_path / "config.yaml", {"train": {"init_from": str(unet_checkpoint)}})
    out = tmp_path / "run"
    result = run(capsys, "train", "--config", config, "--quiet", "--out", out)
    assert_refused(result, "train", r"init_from: .*unet\.pt holds a unet model, this config trains a lpam-net", out)


def test_resume_from_a_model_only_checkpoint_names_the_file(tmp_path, capsys, lpam_checkpoint):
    config = write_config(tmp_path / "config.yaml")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(lpam_checkpoint.read_bytes())  # a copied best.pt
    result = run(capsys, "train", "--config", config, "--resume", "--quiet", "--out", run_dir)
    assert_refused(result, "train", r"--resume: .*last\.pt holds no training position", run_dir / "train.csv")


# --- 8. degenerate requests ---------------------------------------------------------------------------------

def write_npz_dataset(root, t2_scale=1.0):
    root.mkdir()
    rng = np.random.default_rng(0)
    for subject in ("S01", "S02", "S03"):
        volume = np.zeros((3, 32, 32), np.float32)
        volume[:, 8:24, 8:24] = 0.5 + 0.5 * rng.random((3, 16, 16))
        np.savez(root / f"{subject}.npz", t1=volume, t2=t2_scale * volume)
    return root


@pytest.mark.parametrize("argv, command, message", [
    (["reconstruct", "T1.npy", "T1.npy", "--contrasts", "T1", "T1"], "reconstruct", "lists T1 twice"),
    (["solve", "--contrasts", "T1", "T1", "--iterations", "2"], "solve", "lists T1 twice"),
    (["evaluate", "--contrasts", "T2", "t2"], "evaluate", "lists t2 twice"),
    (["benchmark", "--contrasts", "T1", "T1", "--methods", "zero-filled"], "benchmark", "lists T1 twice"),
    (["benchmark", "--masks", "radial-0.20", "radial-0.20", "--methods", "zero-filled"], "benchmark",
     "--masks lists radial-0.20 twice"),
])
def test_duplicate_names_are_errors(tmp_path, capsys, monkeypatch, lpam_checkpoint, argv, command, message):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "T1.npy", np.ones((160, 180)))
    extra = ["--checkpoint", lpam_checkpoint] if command in ("reconstruct", "evaluate") else []
    assert_refused(run(capsys, *argv, *extra, "--quiet", "--out", tmp_path / "out"), command, message,
                   tmp_path / "out")


@pytest.mark.parametrize("argv, message", [
    (["--contrasts", "T1", "T1"], "lists T1 twice"),
    (["--size", "0", "64"], "--size must be two sizes H W of at least 8 px, got \\[0, 64\\]"),
    (["--min-foreground", "2"], "--min-foreground is a fraction of the slice in \\[0, 1\\), got 2"),
    (["--min-foreground", "0.99"], "no slice of .* has a foreground fraction >= 0.99.*nothing to write"),
])
def test_prepare_refuses_an_empty_dataset(tmp_path, capsys, argv, message):
    root = write_npz_dataset(tmp_path / "data")
    out = tmp_path / "p.npz"
    result = run(capsys, "prepare", "--data", root, "--size", "32", "32", *argv, "--quiet", "--out", out)
    assert_refused(result, "prepare", message, out)


def test_prepare_names_the_file_of_an_all_zero_volume(tmp_path, capsys):
    root = write_npz_dataset(tmp_path / "data", t2_scale=0.0)
    out = tmp_path / "p.npz"
    result = run(capsys, "prepare", "--data", root, "--size", "32", "32", "--quiet", "--out", out)
    assert_refused(result, "prepare", r"S01\.npz \(T2 of subject S01\): the volume is empty", out)


# --- 9. logs and files ----------------------------------------------------------------------------------------

def test_a_fresh_run_into_a_used_folder_is_refused(tmp_path, capsys):
    config = write_config(tmp_path / "config.yaml")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "train.csv").write_text("step,loss\n1,0.5\n")
    result = run(capsys, "train", "--config", config, "--quiet", "--out", run_dir)
    assert_refused(result, "train", "run is not an empty folder.*--resume", run_dir / "events")
    assert (run_dir / "train.csv").read_text() == "step,loss\n1,0.5\n"


def test_result_files_get_the_umask_permissions(tmp_path):
    umask = os.umask(0o027)
    try:
        save_json({"a": 1}, tmp_path / "r.json")
    finally:
        os.umask(umask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == NEW_FILE_MODE & ~0o027


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys, torch, yaml
    from lpam.training import trainer
    from lpam.training.config import TrainConfig

    torch.set_num_threads(int(sys.argv[3]))
    original, calls = trainer.training_loss, [0]

    def loss(*args, **kwargs):
        calls[0] += 1
        if calls[0] > int(sys.argv[4]):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    trainer.training_loss = loss
    trainer.train(TrainConfig.load(sys.argv[1]), sys.argv[2], quiet=True)
""")


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    """SIGKILL after 3 of 4 steps (last.pt at step 2, train.csv already at step 3), then --resume: the
    weights, optimizer state and losses equal an uninterrupted run's, and train.csv holds each step once."""
    config_path = write_config(tmp_path / "config.yaml", {"train": {"checkpoint_every": 2}})
    config = TrainConfig.load(config_path)
    reference = trainer.train(config, tmp_path / "reference", quiet=True).parent
    killed = tmp_path / "killed"
    process = subprocess.run([sys.executable, "-c", KILLED_RUN, str(config_path), str(killed),
                              str(torch.get_num_threads()), "3"], capture_output=True, text=True)
    assert process.returncode == -9, process.stderr
    assert len(read_rows(killed / "train.csv")) == 3
    assert load_checkpoint(killed / "last.pt")["position"]["global_step"] == 2
    trainer.train(config, killed, resume=True, quiet=True)
    expected, got = load_checkpoint(reference / "last.pt"), load_checkpoint(killed / "last.pt")
    for key, tensor in expected["model"].items():
        assert torch.equal(got["model"][key], tensor), key
    for index, state in expected["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(got["optimizer"]["state"][index][name], value), (index, name)
    rows, reference_rows = read_rows(killed / "train.csv"), read_rows(reference / "train.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [r["loss"] for r in rows] == [r["loss"] for r in reference_rows]
    assert [r["epoch"] for r in read_rows(killed / "val.csv")] == ["0", "1"]


# --- 10. smaller: labels by model type, devices, mixed k-space, API types, unknown options --------------------

def test_unet_results_are_labelled_unet(tmp_path, capsys, unet_checkpoint, images):
    code, text, err = run(capsys, "demo", "--checkpoint", unet_checkpoint, "--slices", "0:1", "--tv-iterations", 2,
                          "--quiet", "--out", tmp_path / "demo")
    assert code == 0, err
    metrics = load_json(tmp_path / "demo" / "metrics.json")
    assert metrics["model"] == "unet" and "unet" in metrics["methods"] and "lpam-net" not in metrics["methods"]
    assert text.startswith("unet: ")
    paths = []
    for j, name in enumerate(("T1", "T2")):
        np.save(tmp_path / f"{name}.npy", images[:, j].numpy())
        paths.append(tmp_path / f"{name}.npy")
    code, _, err = run(capsys, "reconstruct", *paths, "--checkpoint", unet_checkpoint, "--quiet", "--out", tmp_path / "r")
    assert code == 0, err
    assert (tmp_path / "r" / "T1_unet.nii.gz").is_file() and not (tmp_path / "r" / "T1_lpam.nii.gz").exists()
    assert set(load_json(tmp_path / "r" / "metrics.json")["methods"]) == {"zero-filled", "unet"}


def test_benchmark_checks_the_device_for_classical_methods(tmp_path, capsys):
    device, message = ("tpu", "unknown device") if torch.cuda.is_available() else ("cuda", "CUDA is not available")
    out = tmp_path / "out"
    result = run(capsys, "benchmark", "--methods", "zero-filled", "--masks", "radial-0.20", "--slices", "0:1",
                 "--device", device, "--quiet", "--out", out)
    assert_refused(result, "benchmark", message, out)


def test_mixed_real_and_complex_kspace_files_are_refused(tmp_path, capsys, lpam_checkpoint, images):
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(images.numpy(), axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.save(tmp_path / "T1_k.npy", kspace[:, 0])
    np.save(tmp_path / "T2_k.npy", np.abs(kspace[:, 1]))
    out = tmp_path / "out"
    result = run(capsys, "reconstruct", tmp_path / "T1_k.npy", tmp_path / "T2_k.npy", "--input-type", "kspace",
                 "--checkpoint", lpam_checkpoint, "--quiet", "--out", out)
    assert_refused(result, "reconstruct", r"must be complex, got real data in .*T2_k\.npy", out)


@pytest.mark.parametrize("kind", ["numpy k-space", "complex128"])
def test_api_input_types(lpam_checkpoint, images, kind):
    """The network call gives a clear TypeError; run_network converts and gives the same result."""
    from lpam.checkpoint import load_model

    model = load_model(lpam_checkpoint)
    mask = MaskSpec().build(SHAPE)
    kspace, physics = simulate_kspace(images[:1], mask), MRIPhysics(mask, 2)
    given = {"numpy k-space": kspace.numpy(), "complex128": kspace.to(torch.complex128)}[kind]
    with pytest.raises(TypeError, match="torch.from_numpy" if "numpy" in kind else "complex64"):
        model(given, physics)
    torch.testing.assert_close(run_network(model, given, physics), run_network(model, kspace, physics))


def test_physics_takes_tensors_and_a_binary_mask():
    mask = MaskSpec().build(SHAPE)
    with pytest.raises(TypeError, match="torch.from_numpy"):
        MRIPhysics(mask.numpy(), 2)
    with pytest.raises(ValueError, match="only 0 and 1"):
        MRIPhysics(0.5 * mask, 2)


@pytest.mark.parametrize("command", ["solve", "train", "reconstruct"])
def test_unknown_options_name_the_command(capsys, command):
    required = {"solve": ["--out", "x"], "train": ["--config", "c", "--out", "x"], "reconstruct": ["a", "--out", "x"]}
    with pytest.raises(SystemExit) as exit_info:
        main([command, *required[command], "--regulariser", "tv"])
    assert exit_info.value.code == 2
    assert f"lpam {command}: error: unrecognized arguments: --regulariser tv" in capsys.readouterr().err
