"""`lpam prepare` on small synthetic BraTS (both naming schemes) and BIDS folders, then train and evaluate
on the prepared file; bad data gives clear errors."""
import json

import nibabel
import numpy as np
import pytest
import yaml

from lpam.cli import main
from lpam.data.datasets import crop_or_pad, subject_splits
from lpam.data.prepared import load_prepared


def phantom(shape=(40, 44, 6), seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    head = ((x / 0.8) ** 2 + (y / 0.7) ** 2 < 1).astype(np.float32)
    volume = np.stack([head * (0.5 + 0.1 * z) for z in range(shape[2])], axis=-1)
    volume[..., 0] = 0  # an empty slice, to be skipped
    return scale * (volume + 0.01 * rng.random(shape)).astype(np.float32)


def save(path, volume):
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), str(path))


def brats(root, subjects=6, scheme=2021):
    names = {"T1": "t1", "T2": "t2"} if scheme == 2021 else {"T1": "t1n", "T2": "t2w"}
    separator = "_" if scheme == 2021 else "-"
    for i in range(subjects):
        for j, (contrast, name) in enumerate(names.items()):
            save(root / f"S{i:03d}" / f"S{i:03d}{separator}{name}.nii.gz", phantom(seed=i + 10 * j, scale=100 + 50 * j))
    return root


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("scheme", [2021, 2023])
def test_prepare_brats_then_train_and_evaluate(tmp_path, capsys, scheme):
    root = brats(tmp_path / "brats", scheme=scheme)
    (root / "S099").mkdir()
    save(root / "S099" / ("S099_t1.nii.gz" if scheme == 2021 else "S099-t1n.nii.gz"), phantom())  # no T2
    prepared = tmp_path / "prepared.npz"
    code, text, err = run(capsys, "prepare", "--data", root, "--size", 32, 36, "--split-fractions", 0.5, 0.25, 0.25,
                          "--quiet", "--out", prepared)
    assert code == 0, err
    assert "format brats" in text and "skipped S099: missing T2" in text
    train_images, contrasts, subjects, slices = load_prepared(prepared, "train")
    assert contrasts == ["T1", "T2"] and train_images.shape[1:] == (2, 32, 36)
    assert 0 not in slices and 0 <= train_images.min() and train_images.max() <= 1
    subjects_per_split = [set(load_prepared(prepared, s)[2]) for s in ("train", "val", "test")]
    assert sum(len(s) for s in subjects_per_split) == 6 and not set.intersection(*subjects_per_split)
    config = {"model": {"phases": 1, "features": 8},
              "data": {"source": str(prepared), "augment": {"enabled": False}, "mask": {"kind": "cartesian-equispaced", "rate": None, "acceleration": 4, "pool": 2}},
              "train": {"schedule": [{"phases": 1, "epochs": 1}], "steps_per_epoch": 2, "val_slices": 1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    code, _, err = run(capsys, "train", "--config", tmp_path / "config.yaml", "--quiet", "--out", tmp_path / "run")
    assert code == 0, err
    code, _, err = run(capsys, "evaluate", "--checkpoint", tmp_path / "run" / "best.pt", "--data", prepared,
                       "--split", "train", "--mask", "cartesian-equispaced", "--acceleration", 4, "--quiet",
                       "--out", tmp_path / "eval")
    assert code == 0, err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"zero-filled", "best"} and metrics["data"].endswith(":train")


def test_prepare_bids_with_sessions(tmp_path, capsys):
    for i in range(3):
        for contrast in ("T1w", "T2w"):
            save(tmp_path / "bids" / f"sub-{i:02d}" / "ses-1" / "anat" / f"sub-{i:02d}_ses-1_{contrast}.nii.gz",
                 phantom(seed=i))
    code, text, err = run(capsys, "prepare", "--data", tmp_path / "bids", "--size", 32, 32, "--quiet",
                          "--out", tmp_path / "p.npz")
    assert code == 0 and "format bids" in text, err
    names = set()
    for split in ("train", "val", "test"):
        names |= set(load_prepared(tmp_path / "p.npz", split)[2])
    assert names == {"sub-00_ses-1", "sub-01_ses-1", "sub-02_ses-1"}


def test_split_by_subject_is_deterministic_and_complete():
    names = [f"S{i}" for i in range(20)]
    first, second = subject_splits(names, (0.8, 0.1, 0.1)), subject_splits(list(reversed(names)), (0.8, 0.1, 0.1))
    assert first == second
    assert sorted(first.values()).count("train") == 16 and list(first.values()).count("val") == 2


def test_crop_or_pad_centres():
    image = np.arange(12, dtype=float).reshape(3, 4)
    assert crop_or_pad(image, (1, 2)).tolist() == [[5.0, 6.0]]
    padded = crop_or_pad(image, (5, 6))
    assert padded.shape == (5, 6) and padded[1:4, 1:5].tolist() == image.tolist()


@pytest.mark.parametrize("problem, message", [
    ("empty", "empty"), ("unknown", "unknown dataset layout"), ("corrupt", "corrupt"),
    ("grid", "differs"), ("missing", "no subject has all"),
])
def test_prepare_errors(tmp_path, capsys, problem, message):
    root = tmp_path / "data"
    root.mkdir()
    if problem == "unknown":
        (root / "notes.txt").write_text("hello")
    elif problem in ("corrupt", "grid", "missing"):
        brats(root, subjects=1)
        t2 = root / "S000" / "S000_t2.nii.gz"
        if problem == "corrupt":
            t2.write_bytes(t2.read_bytes()[:100])
        elif problem == "grid":
            save(t2, phantom(shape=(30, 44, 6)))
        else:
            t2.unlink()
    code, _, err = run(capsys, "prepare", "--data", root, "--format", "brats" if problem != "unknown" else None,
                       "--quiet", "--out", tmp_path / "p.npz") if problem != "unknown" else run(
        capsys, "prepare", "--data", root, "--quiet", "--out", tmp_path / "p.npz")
    assert code == 2 and message in err, err
    assert not (tmp_path / "p.npz").exists()


def test_prepare_ixi_resamples_t1_onto_the_t2_grid(tmp_path, capsys):
    root = tmp_path / "ixi"
    for i in range(3):
        prefix = f"IXI{i:03d}-Guys-{1000 + i}"
        t2 = phantom(shape=(40, 44, 6), seed=i)
        save(root / f"{prefix}-T2.nii.gz", t2)
        save(root / f"{prefix}-PD.nii.gz", t2)
        t1_affine = np.diag([0.5, 0.5, 1.0, 1.0])  # twice the in-plane resolution: 80 x 88 voxels
        root.mkdir(exist_ok=True)
        nibabel.save(nibabel.Nifti1Image(phantom(shape=(80, 88, 6), seed=i), t1_affine), str(root / f"{prefix}-T1.nii.gz"))
    save(root / "IXI099-HH-2000-T2.nii.gz", phantom())  # T1 missing
    code, text, err = run(capsys, "prepare", "--data", root, "--contrasts", "T1", "T2", "--size", 40, 44, "--quiet",
                          "--out", tmp_path / "p.npz")
    assert code == 0 and "format ixi" in text and "skipped IXI099-HH-2000: missing T1" in text, err
    images = np.concatenate([load_prepared(tmp_path / "p.npz", s)[0] for s in ("train", "val", "test")])
    assert images.shape[1:] == (2, 40, 44)
    head_t1, head_t2 = images[:, 0] > 0.2, images[:, 1] > 0.2
    assert (head_t1 == head_t2).mean() > 0.95  # resampled T1 lies on the T2 grid
