"""`lpam prepare` on small synthetic BraTS (both naming schemes), BIDS, IXI, HDF5 (M4Raw / fastMRI, single-
and multi-coil), .mat and .npz datasets, then train and evaluate on the prepared file (measured k-space
too); bad data gives clear errors."""
import json

import h5py
import nibabel
import numpy as np
import pytest
import scipy.io
import torch
import yaml

from lpam.cli import main
from lpam.data.kspace_images import combine_coils
from lpam.data.layouts.registry import find_subjects, load_volumes
from lpam.data.prepare import crop_or_pad, prepare, subject_splits
from lpam.data.prepared import load_prepared
from lpam.physics.fourier import fft2c


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
    train = load_prepared(prepared, "train")
    assert train.contrasts == ["T1", "T2"] and train.images.shape[1:] == (2, 32, 36)
    assert train.complex_images is None and train.coil_images is None and train.maps is None
    assert 0 not in train.slices and 0 <= train.images.min() and train.images.max() <= 1
    subjects_per_split = [set(load_prepared(prepared, s)[2]) for s in ("train", "val", "test")]
    assert sum(len(s) for s in subjects_per_split) == 6 and not set.intersection(*subjects_per_split)
    metrics = train_then_evaluate(capsys, tmp_path, prepared, tiny_train_config(tmp_path, prepared, augment=False))
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


# --- HDF5 (fastMRI / M4Raw), .mat and .npz layouts, measured k-space -------------------------------------

def complex_head(slices=5, shape=(32, 32), seed=0, scale=1.0):
    """(S, H, W) complex images: an elliptic head with a smooth phase; slice 0 empty (skipped)."""
    magnitude = np.moveaxis(phantom(shape=(*shape, slices), seed=seed, scale=scale), -1, 0)
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    return (magnitude * np.exp(1j * (0.5 + 0.8 * x - 0.4 * y))).astype(np.complex64)


def sensitivities(coils, shape):
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    centres = [(np.cos(a), np.sin(a)) for a in np.linspace(0, 2 * np.pi, coils, endpoint=False)]
    return np.stack([np.exp(-((y - cy) ** 2 + (x - cx) ** 2)) * np.exp(1j * (cx * x + c)) for c, (cy, cx) in enumerate(centres)])


def fourier(images):
    return fft2c(torch.from_numpy(np.ascontiguousarray(images, dtype=np.complex64))).numpy()


def write_h5(path, images, coils=0, acquisition=None, targets=("reconstruction_rss",)):
    """A fastMRI-style file: kspace (S, [coils,] H, W), magnitude targets (S, H, W), attrs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    coil_images = images[:, None] * sensitivities(coils, images.shape[-2:])[None] if coils else images
    with h5py.File(path, "w") as handle:
        handle["kspace"] = fourier(coil_images)
        magnitude = np.sqrt((np.abs(coil_images) ** 2).sum(1)) if coils else np.abs(images)
        for key in targets:
            handle[key] = magnitude.astype(np.float32)
        if acquisition:
            handle.attrs["acquisition"] = acquisition


def m4raw(root, subjects=4, coils=3, repetitions=2, missing_t2=True):
    for i in range(subjects):
        for j, contrast in enumerate(("T1", "T2")):
            for r in range(repetitions):
                noise = 0.02 * np.random.default_rng(100 * i + 10 * j + r).standard_normal((5, 32, 32))
                write_h5(root / f"20220610{i:02d}_{contrast}0{r + 1}.h5", complex_head(seed=i + 10 * j, scale=1 + j) + noise,
                         coils=coils, acquisition=f"AX{contrast}")
    if missing_t2:
        write_h5(root / "2022069999_T101.h5", complex_head(), coils=coils)
    return root


def tiny_train_config(tmp_path, prepared, augment=True):
    config = {"model": {"phases": 1, "features": 8},
              "data": {"source": str(prepared), "augment": {"enabled": augment},
                       "mask": {"kind": "cartesian-equispaced", "rate": None, "acceleration": 4, "pool": 2}},
              "train": {"schedule": [{"phases": 1, "epochs": 1}], "steps_per_epoch": 2, "val_slices": 1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "config.yaml"


def train_then_evaluate(capsys, tmp_path, prepared, config=None, *evaluate_options):
    """`lpam train` (the tiny config) on a prepared dataset, then `lpam evaluate` of its best.pt on the train
    split (a Cartesian 4x mask unless ``evaluate_options`` say otherwise); returns metrics.json."""
    code, _, err = run(capsys, "train", "--config", config or tiny_train_config(tmp_path, prepared), "--quiet",
                       "--out", tmp_path / "run")
    assert code == 0, err
    options = evaluate_options or ("--mask", "cartesian-equispaced", "--acceleration", 4)
    code, _, err = run(capsys, "evaluate", "--checkpoint", tmp_path / "run" / "best.pt", "--data", prepared,
                       "--split", "train", *options, "--quiet", "--out", tmp_path / "eval")
    assert code == 0, err
    return json.loads((tmp_path / "eval" / "metrics.json").read_text())


def all_splits(prepared):
    parts = [load_prepared(prepared, s) for s in ("train", "val", "test")]
    complex_images = [p.complex_images for p in parts if p.complex_images is not None]
    return (np.concatenate([p.images for p in parts]), complex_images and np.concatenate(complex_images),
            {s for p in parts for s in p.subjects})


def test_prepare_m4raw_measured_kspace_then_train_and_evaluate(tmp_path, capsys):
    m4raw(tmp_path / "m4raw" / "multicoil_train")
    prepared = tmp_path / "prepared.npz"
    code, text, err = run(capsys, "prepare", "--data", tmp_path / "m4raw", "--size", 24, 28, "--measured-kspace",
                          "--quiet", "--out", prepared)
    assert code == 0, err
    assert "format h5" in text and "complex images of the measured k-space" in text
    assert "skipped 2022069999: missing T2" in text
    images, complex_images, subjects = all_splits(prepared)
    assert subjects == {f"20220610{i:02d}" for i in range(4)}
    assert complex_images.dtype == np.complex64 and complex_images.shape == images.shape
    assert complex_images.shape[1:] == (2, 24, 28)
    np.testing.assert_allclose(images, np.abs(complex_images), atol=2e-3)  # float16 magnitudes = |x|
    assert np.abs(complex_images.imag).max() > 0.05  # the measured phase is kept
    metrics = train_then_evaluate(capsys, tmp_path, prepared)
    assert metrics["methods"]["zero-filled"]["T1"]["psnr"]["mean"] > 10


def test_single_coil_measured_kspace_is_kept_exactly(tmp_path):
    root = tmp_path / "h5"
    for i in range(3):
        for contrast in ("T1", "T2"):
            write_h5(root / f"S{i}_{contrast}.h5", complex_head(seed=i), targets=())
    prepare(root, tmp_path / "p.npz", size=(32, 32), measured_kspace=True, progress=False)
    part = next(p for p in (load_prepared(tmp_path / "p.npz", s) for s in ("train", "val", "test")) if p.slices)
    with h5py.File(root / f"{part.subjects[0]}_T1.h5") as handle:
        measured = handle["kspace"][part.slices[0]]
    again, sampled = fourier(part.complex_images[0, 0]), np.abs(measured) > 1e-2
    ratio = again[sampled] / measured[sampled]
    np.testing.assert_allclose(ratio, np.full_like(ratio, ratio.real.mean()), rtol=1e-4)  # F x = y / scale: nothing re-simulated


def test_prepare_keep_coils_then_train_and_evaluate(tmp_path, capsys):
    from lpam.data.sources import load_evaluation_data
    from lpam.physics.coils import sensitivity_combine
    from lpam.training.config import TrainConfig
    from lpam.training.samples import config_transform, make_batch, pool_draw

    root = m4raw(tmp_path / "m4raw", subjects=3, coils=3, repetitions=1, missing_t2=False)
    prepared = tmp_path / "prepared.npz"
    code, text, err = run(capsys, "prepare", "--data", root, "--size", 32, 32, "--measured-kspace", "--keep-coils",
                          "--quiet", "--out", prepared)
    assert code == 0 and "3 coil images and coil maps" in text, err
    part = next(p for p in (load_prepared(prepared, s) for s in ("train", "val", "test")) if p.slices)
    assert part.coil_images.shape == part.maps.shape == (len(part.slices), 2, 3, 32, 32)
    power = (np.abs(part.maps) ** 2).sum(2)
    assert np.all((np.abs(power - 1) < 1e-4) | (power == 0))  # sum_c |S_c|^2 = 1 on the object, 0 outside
    combined = sensitivity_combine(torch.from_numpy(part.coil_images), torch.from_numpy(part.maps)).numpy()
    np.testing.assert_allclose(combined, part.complex_images, atol=1e-5)  # x = sum_c conj(S_c) x_c
    with h5py.File(root / f"{part.subjects[0]}_T101.h5") as handle:
        measured = handle["kspace"][part.slices[0], 1]
    again, sampled = fourier(part.coil_images[0, 0, 1]), np.abs(measured) > 1e-2
    ratio = again[sampled] / measured[sampled]
    np.testing.assert_allclose(ratio, np.full_like(ratio, ratio.real.mean()), rtol=1e-4)  # F x_c = y_c / scale

    full = {"augment": {"enabled": False}, "mask": {"kind": "variable-density", "rate": 1.0, "pool": 1}}
    config = TrainConfig.from_dict({"data": {"source": str(prepared), "coil_maps": "measured", **full}})
    split = next(s for s in ("train", "val", "test") if load_prepared(prepared, s).slices)
    transform = config_transform(load_evaluation_data(str(prepared), split), config, pool_draw(config.data.mask))
    kspace, physics, targets = make_batch(transform, [0], config.train.seed, (0, 0))
    assert kspace.shape == (1, 2, 3, 32, 32) and physics.maps.shape == (1, 2, 3, 32, 32)
    torch.testing.assert_close(physics.adjoint(kspace), torch.from_numpy(part.complex_images[:1]),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(targets, torch.from_numpy(np.abs(part.complex_images[:1])), atol=1e-5, rtol=1e-5)

    train_config = yaml.safe_load(tiny_train_config(tmp_path, prepared).read_text())
    train_config["data"]["coil_maps"] = "measured"
    (tmp_path / "coils.yaml").write_text(yaml.safe_dump(train_config))
    metrics = train_then_evaluate(capsys, tmp_path, prepared, tmp_path / "coils.yaml", "--slices", "0:2", "--mask",
                                  "cartesian-equispaced", "--acceleration", 4)
    assert set(metrics["methods"]) == {"zero-filled-rss", "zero-filled-sense", "best"}
    assert metrics["coils"] == {"count": 3, "maps": "measured k-space, maps estimated by lpam prepare"}


def test_keep_coils_errors(tmp_path):
    root = m4raw(tmp_path / "m4raw", subjects=2, coils=3, repetitions=1, missing_t2=False)
    for contrast in ("T1", "T2"):
        write_h5(root / f"2022061099_{contrast}01.h5", complex_head(), coils=2)
    with pytest.raises(ValueError, match="2022061099_T101.h5: 2 coils, the files before it have 3"):
        prepare(root, tmp_path / "p.npz", size=(32, 32), measured_kspace=True, keep_coils=True, progress=False)
    with pytest.raises(ValueError, match="add --measured-kspace"):
        prepare(root, tmp_path / "p.npz", keep_coils=True, progress=False)
    single = tmp_path / "single"
    for contrast in ("T1", "T2"):
        write_h5(single / f"S1_{contrast}.h5", complex_head())
    with pytest.raises(ValueError, match="S1_T1.h5: --keep-coils needs multi-coil k-space"):
        prepare(single, tmp_path / "p.npz", size=(32, 32), measured_kspace=True, keep_coils=True, progress=False)
    from lpam.training import samples
    from lpam.training.config import TrainConfig

    config = TrainConfig.from_dict({"data": {"coil_maps": "measured"}})
    with pytest.raises(ValueError, match="embedded:val: data.coil_maps 'measured' needs a dataset prepared"):
        samples.validation_data(config)


def test_h5_repetitions_are_averaged_or_the_first_is_kept(tmp_path):
    root = m4raw(tmp_path / "m4raw", subjects=1, coils=0, missing_t2=False)
    [subject], _, data_format = find_subjects(root, None, ["T1", "T2"])
    assert data_format == "h5" and [p.name for p in subject.repetitions["T1"]] == ["2022061000_T101.h5", "2022061000_T102.h5"]
    with h5py.File(root / "2022061000_T101.h5") as first, h5py.File(root / "2022061000_T102.h5") as second:
        rss = [first["reconstruction_rss"][()], second["reconstruction_rss"][()]]
    averaged = load_volumes(subject, ["T1", "T2"], "h5")[0]
    kept = load_volumes(subject, ["T1", "T2"], "h5", repetitions="first")[0]
    np.testing.assert_allclose(averaged, (rss[0] + rss[1]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(kept, rss[0])


def test_fastmri_names_and_acquisition_attrs_pair_by_subject(tmp_path):
    root = tmp_path / "fastmri"
    write_h5(root / "file_brain_AXT1_200_6002217.h5", complex_head(), coils=2, targets=())  # target: RSS of kspace
    write_h5(root / "file_brain_AXT2_200_6002217.h5", complex_head(seed=1), coils=2)
    write_h5(root / "file_brain_AXFLAIR_201_6002300.h5", complex_head(), coils=2)  # single-contrast scan
    write_h5(root / "visit7" / "scan_a.h5", complex_head(), acquisition="AXT1")
    write_h5(root / "visit7" / "scan_b.h5", complex_head(), acquisition="AXT2")
    subjects, missing, data_format = find_subjects(root, None, ["T1", "T2"])
    assert data_format == "h5" and [s.name for s in subjects] == ["file_brain_200_6002217", "visit7"]
    assert missing == {"file_brain_201_6002300": ["T1", "T2"]}
    rss = load_volumes(subjects[0], ["T1", "T2"], "h5")[0]
    np.testing.assert_allclose(rss, np.abs(complex_head()) * np.sqrt((np.abs(sensitivities(2, (32, 32))) ** 2).sum(0)), atol=1e-4)


def test_combine_coils_gives_about_the_rss_image():
    image = complex_head(slices=2)
    coil_images = image[:, None] * sensitivities(4, (32, 32))[None]
    combined = combine_coils(fourier(coil_images))
    rss = np.sqrt((np.abs(coil_images) ** 2).sum(1))
    inside = rss > 0.3 * rss.max()
    assert np.abs(np.abs(combined) - rss)[inside].max() < 0.05 * rss.max()


def write_mat_subject(folder, slices_last=True, kspace=True, shape=(32, 32), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for number, contrast in ((1, "T1"), (2, "T2")):
        image = complex_head(shape=shape, seed=seed + number)
        arrange = (lambda a: np.moveaxis(a, 0, -1)) if slices_last else (lambda a: a)
        scipy.io.savemat(folder / f"{contrast}.mat", {"img": arrange(np.abs(image))})
        if kspace:
            scipy.io.savemat(folder / f"K{number}.mat", {"k": arrange(fourier(image))})


def test_prepare_mat_with_kspace_and_mask_then_train_and_evaluate(tmp_path, capsys):
    root = tmp_path / "mat"
    for i in range(3):
        write_mat_subject(root / f"case{i}", seed=i)
    (root / "case9").mkdir()
    scipy.io.savemat(root / "case9" / "T1.mat", {"img": np.ones((32, 32, 5))})  # T2 missing
    mask = np.fft.fftshift(np.random.default_rng(0).random((32, 32)) < 0.3)
    mask[14:18, 14:18] = True
    scipy.io.savemat(root / "mask.mat", {"mask": mask.astype(np.float64)})
    magnitudes = tmp_path / "magnitudes.npz"
    code, text, err = run(capsys, "prepare", "--data", root, "--size", 32, 32, "--quiet", "--out", magnitudes)
    assert code == 0 and "format mat" in text and "skipped case9: missing T2" in text, err
    assert "stored: lpam evaluate" in text
    prepared = tmp_path / "measured.npz"
    code, text, err = run(capsys, "prepare", "--data", root, "--size", 32, 32, "--measured-kspace", "--quiet", "--out", prepared)
    assert code == 0 and "skipped case9: missing T1 k-space, T2 k-space" in text, err
    mag_images, _, _ = all_splits(magnitudes)
    images, complex_images, subjects = all_splits(prepared)
    assert subjects == {"case0", "case1", "case2"} and images.shape[1:] == (2, 32, 32)
    np.testing.assert_allclose(mag_images, images, atol=3e-3)  # same images, from the k-space this time
    with np.load(prepared) as archive:
        np.testing.assert_array_equal(archive["mask"], mask)
    metrics = train_then_evaluate(capsys, tmp_path, prepared, None, "--mask-file", prepared)
    assert metrics["mask"]["kind"] == "file" and abs(metrics["mask"]["achieved_rate"] - mask.mean()) < 1e-6
    code, text, err = run(capsys, "prepare", "--data", root, "--size", 24, 24, "--quiet", "--out", tmp_path / "cropped.npz")
    assert code == 0 and "not stored" in text, err
    with np.load(tmp_path / "cropped.npz") as archive:
        assert "mask" not in archive.files


def test_mat_flat_folder_and_slice_axis(tmp_path, capsys):
    write_mat_subject(tmp_path / "flat", slices_last=False, kspace=False)
    code, text, err = run(capsys, "prepare", "--data", tmp_path / "flat", "--slice-axis", "first", "--size", 32, 32,
                          "--split-fractions", 1, 0, 0, "--quiet", "--out", tmp_path / "p.npz")
    assert code == 0 and "format mat" in text, err
    part = load_prepared(tmp_path / "p.npz", "train")
    assert set(part.subjects) == {"flat"} and part.slices == [1, 2, 3, 4]


def save_mat73(path, name, array):
    """A MATLAB v7.3 file: HDF5 behind a 512-byte MATLAB header, arrays column-major, complex as (real, imag)."""
    if np.iscomplexobj(array):
        compound = np.empty(array.shape, dtype=[("real", "<f4"), ("imag", "<f4")])
        compound["real"], compound["imag"] = array.real, array.imag
        array = compound
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle[name] = np.ascontiguousarray(array.T)
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file".ljust(124) + b"\x00\x02IM")


def test_mat_v73_files_with_measured_kspace(tmp_path, capsys):
    root = tmp_path / "v73"
    root.mkdir()
    for number, contrast in ((1, "T1"), (2, "T2")):
        image = complex_head(seed=number)
        save_mat73(root / f"{contrast}.mat", contrast, np.moveaxis(np.abs(image), 0, -1))
        save_mat73(root / f"K{number}.mat", f"K{number}", np.moveaxis(fourier(image), 0, -1))
    code, text, err = run(capsys, "prepare", "--data", root, "--measured-kspace", "--size", 32, 32,
                          "--split-fractions", 1, 0, 0, "--quiet", "--out", tmp_path / "p.npz")
    assert code == 0 and "format mat" in text, err
    part = load_prepared(tmp_path / "p.npz", "train")
    expected = complex_head(seed=1)[part.slices[0]]
    ratio = part.complex_images[0, 0][np.abs(expected) > 0.1] / expected[np.abs(expected) > 0.1]
    np.testing.assert_allclose(ratio, np.full_like(ratio, ratio.real.mean()), rtol=1e-3)  # same image, orientation and phase


def test_prepare_npz_folder_and_single_file(tmp_path, capsys):
    root = tmp_path / "npz"
    root.mkdir()
    for i in range(3):
        image = complex_head(seed=i)
        np.savez(root / f"S{i}.npz", t1=np.abs(image), T2=np.abs(image) * 2, K_T1=fourier(image), K_T2=fourier(image))
    np.savez(root / "S9.npz", T1=np.ones((5, 32, 32)))
    code, text, err = run(capsys, "prepare", "--data", root, "--size", 32, 32, "--quiet", "--out", tmp_path / "a.npz")
    assert code == 0 and "format npz" in text and "skipped S9: missing T2" in text, err
    assert all_splits(tmp_path / "a.npz")[2] == {"S0", "S1", "S2"}
    code, text, err = run(capsys, "prepare", "--data", root / "S0.npz", "--measured-kspace", "--split-fractions", 1, 0, 0,
                          "--size", 32, 32, "--quiet", "--out", tmp_path / "b.npz")
    assert code == 0 and "format npz" in text, err
    part = load_prepared(tmp_path / "b.npz", "train")
    assert set(part.subjects) == {"S0"} and part.complex_images.shape == (4, 2, 32, 32)


def test_make_batch_uses_measured_kspace_without_phase_or_noise(tmp_path):
    from lpam.data.sources import EvaluationData
    from lpam.physics.masks import make_mask
    from lpam.training.config import TrainConfig
    from lpam.training.samples import config_transform, make_batch, pool_draw

    images = torch.from_numpy(complex_head(slices=3)[:, None].repeat(2, axis=1) / 2)  # (3, 2, 32, 32)
    for enabled in (False, True):
        config = TrainConfig.from_dict({"data": {"augment": {"enabled": enabled, "noise_probability": 1.0,
                                                             "phase_probability": 1.0},
                                                 "mask": {"kind": "radial", "rate": 0.3, "pool": 1}}})
        transform = config_transform(EvaluationData(images, [0, 1, 2], ["T1", "T2"], "test"), config,
                                     pool_draw(config.data.mask))
        kspace, physics, targets = make_batch(transform, [1, 2], config.train.seed, (0, 0))
        assert not physics.multi_coil
        mask = torch.from_numpy(make_mask("radial", (32, 32), rate=0.3, seed=0))
        for row, index in enumerate([1, 2]):
            x = images[index]
            candidates = [x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2)]
            flipped = min(candidates, key=lambda c: float(torch.std(targets[row][c.abs() > 0.1] / c.abs()[c.abs() > 0.1])))
            scale = float((targets[row][flipped.abs() > 0.1] / flipped.abs()[flipped.abs() > 0.1]).mean())
            assert enabled or scale == pytest.approx(1.0)
            torch.testing.assert_close(targets[row], scale * flipped.abs(), atol=1e-5, rtol=1e-4)
            expected = torch.from_numpy(fourier((scale * flipped).numpy())) * mask
            torch.testing.assert_close(kspace[row], expected, atol=1e-4, rtol=1e-4)


def test_measured_kspace_needs_a_kspace_layout(tmp_path, capsys):
    root = brats(tmp_path / "brats", subjects=1)
    code, _, err = run(capsys, "prepare", "--data", root, "--measured-kspace", "--quiet", "--out", tmp_path / "p.npz")
    assert code == 2 and "needs k-space" in err


def make_layout(root, data_format, problem):
    """A small dataset of ``data_format`` (h5, mat, npz) with one ``problem``."""
    shape_t2 = (32, 28) if problem == "grid" else (32, 32)
    if data_format == "h5":
        write_h5(root / "S1_T1.h5", complex_head())
        if problem != "missing":
            write_h5(root / "S1_T2.h5", complex_head(shape=shape_t2))
        corrupt = root / "S1_T2.h5"
    elif data_format == "mat":
        write_mat_subject(root / "S1", kspace=False)
        if problem == "grid":
            scipy.io.savemat(root / "S1" / "T2.mat", {"img": np.ones((*shape_t2, 5))})
        elif problem == "missing":
            (root / "S1" / "T2.mat").unlink()
        corrupt = root / "S1" / "T2.mat"
    else:
        arrays = {"T1": np.abs(complex_head())}
        if problem != "missing":
            arrays["T2"] = np.abs(complex_head(shape=shape_t2))
        np.savez(root / "S1.npz", **arrays)
        corrupt = root / "S1.npz"
    if problem == "corrupt":
        corrupt.write_bytes(corrupt.read_bytes()[:300])
    return corrupt


@pytest.mark.parametrize("data_format", ["h5", "mat", "npz"])
@pytest.mark.parametrize("problem, message", [
    ("empty", "empty"), ("unknown", "found no"), ("corrupt", "corrupt"), ("grid", "differs"), ("missing", "no subject has all"),
])
def test_new_layouts_errors(tmp_path, capsys, data_format, problem, message):
    root = tmp_path / "data"
    root.mkdir()
    corrupt = None
    if problem == "unknown":
        (root / "notes.txt").write_text("hello")
    elif problem != "empty":
        corrupt = make_layout(root, data_format, problem)
    code, _, err = run(capsys, "prepare", "--data", root, "--format", data_format, "--size", 32, 32, "--quiet",
                       "--out", tmp_path / "p.npz")
    assert code == 2 and message in err, err
    if problem == "corrupt":
        assert str(corrupt) in err
    assert not (tmp_path / "p.npz").exists()


def test_uncentred_kspace_and_mask_are_refused(tmp_path, capsys):
    root = tmp_path / "mat"
    write_mat_subject(root)
    kspace = scipy.io.loadmat(root / "K2.mat")["k"]
    scipy.io.savemat(root / "K2.mat", {"k": np.fft.ifftshift(kspace, axes=(0, 1))})
    code, _, err = run(capsys, "prepare", "--data", root, "--measured-kspace", "--size", 32, 32, "--quiet", "--out", tmp_path / "p.npz")
    assert code == 2 and "K2.mat" in err and "centred k-space" in err
    mask = np.zeros((32, 32))
    mask[:4, :] = mask[-4:, :] = 1
    scipy.io.savemat(root / "mask_radial.mat", {"mask": mask})
    code, _, err = run(capsys, "prepare", "--data", root, "--size", 32, 32, "--quiet", "--out", tmp_path / "p.npz")
    assert code == 2 and "mask_radial.mat" in err and "centred" in err
