"""ISMRMRD raw data (issue 15): small files written with the ismrmrd package (Cartesian and radial, 1 and 4
coils, undersampled, 2 slices, 2x readout oversampling, a noise scan and calibration-only lines to skip) read
back against the truth; `lpam reconstruct --input-type ismrmrd` and `lpam prepare --format ismrmrd`; corrupt
and unsupported files refused with `lpam <command>: error: ...`."""
import math
import re

import h5py
import ismrmrd
import nibabel
import numpy as np
import pytest
import torch

from lpam.cli import main
from lpam.data.embedded import load_split
from lpam.data.ismrmrd import read_ismrmrd
from lpam.data.prepared import load_prepared
from lpam.physics.coils import simulate_coil_maps
from lpam.physics.fourier import fft2c, ifft2c
from lpam.physics.masks import make_mask
from lpam.physics.nufft import radial_trajectory

FOV_MM = 220.0
OVERSAMPLING = 2  # readout oversampling of the written Cartesian files
SHAPE = (32, 36)  # (x readout, y phase encode) of the reading tests
TARGET_SHAPE = (80, 90)  # the target check: the embedded test slices at half resolution, whole heads
POOL = 2  # embedded 160 x 180 -> 80 x 90
SPOKES = 12
CALIBRATION_LINE_VALUE = 1e3  # garbage in the calibration-only line: it must be skipped
# relative: ISMRMRD and .npy input give the same reconstruction to float32 rounding (the inputs differ by ~3e-5
# after the oversampling removal; the 10-phase Cartesian network carries that to ~3e-4)
EQUAL = 1e-3


# --- writing ISMRMRD files --------------------------------------------------------------------------------

def header_xml(readout, lines, recon_readout, coils, slices, trajectory="cartesian", depth=1):
    xsd = ismrmrd.xsd

    def space(size):
        return xsd.encodingSpaceType(matrixSize=xsd.matrixSizeType(x=size, y=lines, z=depth),
                                     fieldOfView_mm=xsd.fieldOfViewMm(x=FOV_MM * size / recon_readout, y=FOV_MM, z=5.0))

    limits = xsd.encodingLimitsType(
        kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=lines - 1, center=lines // 2),
        kspace_encoding_step_2=xsd.limitType(minimum=0, maximum=depth - 1, center=depth // 2),
        slice=xsd.limitType(minimum=0, maximum=slices - 1, center=0))
    encoding = xsd.encodingType(encodedSpace=space(readout), reconSpace=space(recon_readout), encodingLimits=limits,
                                trajectory=xsd.trajectoryType(trajectory))
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_870_000),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(receiverChannels=coils),
        encoding=[encoding])
    return xsd.ToXML(header)


def acquisition(data, flags=(), slice_index=0, line=0, trajectory=None):
    acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data, dtype=np.complex64), trajectory)
    acq.center_sample = data.shape[1] // 2
    acq.idx.kspace_encode_step_1 = line
    acq.idx.slice = slice_index
    for flag in flags:
        acq.set_flag(flag)
    return acq


def write_cartesian(path, coil_images, lines, oversampling=OVERSAMPLING, extras=True, header=None):
    """Coil images (S, Nc, H, W) (H the readout x, W the phase encode y) as ISMRMRD with the phase-encode
    ``lines``, the readout oversampled (the image zero-padded along x); ``extras``: a noise scan and one
    calibration-only line per slice, full of garbage. Returns the centred k-space (S, Nc, H, W) without
    oversampling."""
    slices, coils, height, width = coil_images.shape
    readout = height * oversampling
    padded = np.zeros((slices, coils, readout, width), dtype=np.complex64)
    padded[:, :, readout // 2 - height // 2:readout // 2 - height // 2 + height] = coil_images
    kspace = fft2c(torch.from_numpy(padded)).numpy()
    with ismrmrd.Dataset(str(path), "dataset", mode="w") as dataset:
        dataset.write_xml_header(header or header_xml(readout, width, height, coils, slices))
        if extras:
            noise = np.random.default_rng(0).standard_normal((coils, readout)).astype(np.complex64)
            dataset.append_acquisition(acquisition(noise, [ismrmrd.ACQ_IS_NOISE_MEASUREMENT]))
        for s in range(slices):
            if extras:
                garbage = np.full((coils, readout), CALIBRATION_LINE_VALUE, dtype=np.complex64)
                dataset.append_acquisition(acquisition(garbage, [ismrmrd.ACQ_IS_PARALLEL_CALIBRATION], s, width // 2))
            for line in lines:
                dataset.append_acquisition(acquisition(kspace[s, :, :, line], (), s, line))
    return fft2c(torch.from_numpy(np.ascontiguousarray(coil_images, dtype=np.complex64))).numpy()


def write_radial(path, samples, points, shape, spokes=SPOKES, trajectory="radial"):
    """Samples (S, Nc, K) at ``points`` (2, K) radians per pixel on ``shape`` (x, y), one acquisition per spoke,
    the trajectory in units of 1 / FOV."""
    slices, coils, count = samples.shape
    readout = count // spokes
    kspace_units = (points.T * np.array(shape) / (2 * math.pi)).astype(np.float32)  # (K, 2): kx, ky
    with ismrmrd.Dataset(str(path), "dataset", mode="w") as dataset:
        dataset.write_xml_header(header_xml(shape[0], shape[1], shape[0], coils, slices, trajectory))
        for s in range(slices):
            for spoke in range(spokes):
                part = slice(spoke * readout, (spoke + 1) * readout)
                dataset.append_acquisition(acquisition(samples[s, :, part], (), s, spoke, kspace_units[part]))


def coil_images(images, coils):
    """(S, Nc, H, W) complex: ``images`` (S, H, W) times simulated coil maps (one coil: the images)."""
    images = torch.as_tensor(images, dtype=torch.complex64)
    if coils == 1:
        return images[:, None].numpy()
    return (images[:, None] * simulate_coil_maps(coils, tuple(images.shape[-2:]))[None]).numpy()


def undersampled_lines(width, acceleration=4):
    """Phase-encode lines of a 4x equispaced Cartesian mask with a fully sampled centre."""
    mask = make_mask("cartesian-equispaced", (8, width), acceleration=acceleration, center_fraction=0.08)
    return np.flatnonzero(mask.all(axis=0))


@pytest.fixture(scope="module")
def small_images():
    """Two slices of T1 and T2 (S, C, 32, 36): the embedded test slices at a fifth of the resolution."""
    data = load_split("test", slices=[9, 10]).images
    return torch.nn.functional.interpolate(data, size=SHAPE, mode="area").numpy()


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- reading ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("coils", [1, 4])
def test_cartesian_files_read_back_with_oversampling_removed_and_extras_skipped(tmp_path, small_images, coils):
    lines = undersampled_lines(SHAPE[1])
    truth = write_cartesian(tmp_path / "T1.h5", coil_images(small_images[:, 0], coils), lines)
    scan = read_ismrmrd(tmp_path / "T1.h5")
    expected_mask = np.zeros(SHAPE, dtype=bool)
    expected_mask[:, lines] = True
    assert scan.trajectory == "cartesian" and scan.shape == SHAPE and scan.slices == (0, 1)
    assert scan.kspace.shape == (2, coils, *SHAPE) and scan.kspace.dtype == np.complex64
    assert np.array_equal(scan.mask, expected_mask) and scan.mask.mean() < 0.3
    assert scan.skipped == {"noise": 1, "calibration": 2}
    assert np.abs(scan.kspace - truth * expected_mask).max() < 1e-5 * np.abs(truth).max()


def test_repeated_lines_are_averaged(tmp_path, small_images):
    truth = write_cartesian(tmp_path / "T1.h5", coil_images(small_images[:1, 0], 1), range(SHAPE[1]),
                            oversampling=1, extras=False)
    centre = SHAPE[1] // 2
    with ismrmrd.Dataset(str(tmp_path / "T1.h5"), "dataset", mode="a") as dataset:  # a second average, 3x
        dataset.append_acquisition(acquisition(3 * truth[0, :, :, centre], (), 0, centre))
    scan = read_ismrmrd(tmp_path / "T1.h5")
    assert scan.mask.all() and scan.skipped == {}
    np.testing.assert_allclose(scan.kspace[0, :, :, centre], 2 * truth[0, :, :, centre], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scan.kspace[0, :, :, :centre], truth[0, :, :, :centre], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("coils", [1, 4])
def test_radial_files_read_back_in_radians_per_pixel(tmp_path, coils):
    points = radial_trajectory(SPOKES, None, "golden", SHAPE).numpy()
    samples = np.random.default_rng(coils).standard_normal((2, coils, points.shape[1], 2)).astype(np.float32)
    samples = samples[..., 0] + 1j * samples[..., 1]
    write_radial(tmp_path / "T1.h5", samples, points, SHAPE)
    scan = read_ismrmrd(tmp_path / "T1.h5")
    assert scan.trajectory == "radial" and scan.shape == SHAPE and scan.mask is None
    assert scan.kspace.shape == samples.shape and np.array_equal(scan.kspace, samples.astype(np.complex64))
    np.testing.assert_allclose(scan.points, points, atol=1e-6)
    assert np.abs(scan.points).max() <= math.pi


# --- lpam reconstruct --input-type ismrmrd -------------------------------------------------------------------

def psnr(image, truth):
    """PSNR (dB) of magnitudes, each scaled to its maximum."""
    error = np.abs(image) / np.abs(image).max() - truth / truth.max()
    return 10 * np.log10(1 / np.mean(error ** 2))


def write_cartesian_4_coil_case(folder):
    """The target case (2 test slices at 80 x 90, 4 coils, 4x lines) as ISMRMRD files T1.h5 and T2.h5 in
    ``folder`` and the same undersampled k-space as T1.npy and T2.npy; returns the truth (2, 2, 80, 90).
    Also what scripts/ismrmrd_phases.py measures."""
    truth = torch.nn.functional.avg_pool2d(load_split("test", slices=[9, 10]).images, POOL).numpy()
    lines = undersampled_lines(TARGET_SHAPE[1])
    for j, contrast in enumerate(("T1", "T2")):
        kspace = write_cartesian(folder / f"{contrast}.h5", coil_images(truth[:, j], 4), lines)
        mask = np.zeros(TARGET_SHAPE, dtype=bool)
        mask[:, lines] = True
        np.save(folder / f"{contrast}.npy", kspace * mask)
    return truth


def zero_filled_rss(folder, contrast):
    """The root sum of squares of the zero-filled coil images of ``contrast``'s .npy k-space in ``folder``."""
    return torch.linalg.vector_norm(ifft2c(torch.from_numpy(np.load(folder / f"{contrast}.npy"))), dim=1).numpy()


def test_cartesian_4_coil_4x_beats_rss_and_matches_npy(tmp_path, capsys):
    """The target: ISMRMRD Cartesian 4-coil 4x undersampled (2 slices, 2x oversampled readout, a noise scan and
    calibration-only lines): the reconstruction is closer to the truth than the zero-filled root sum of squares,
    and equals the result of the same k-space given as .npy."""
    truth = write_cartesian_4_coil_case(tmp_path)
    for kind, suffix in (("ismrmrd", "h5"), ("kspace", "npy")):
        code, out, err = run(capsys, "reconstruct", tmp_path / f"T1.{suffix}", tmp_path / f"T2.{suffix}",
                             "--input-type", kind, "--quiet", "--out", tmp_path / kind)
        assert code == 0, err
    for j, contrast in enumerate(("T1", "T2")):
        from_ismrmrd = nibabel.load(tmp_path / "ismrmrd" / f"{contrast}_lpam.nii.gz").get_fdata()
        from_npy = nibabel.load(tmp_path / "kspace" / f"{contrast}_lpam.nii.gz").get_fdata()
        assert from_ismrmrd.shape == (2, *TARGET_SHAPE)
        assert np.abs(from_ismrmrd - from_npy).max() < EQUAL * np.abs(from_npy).max()
        assert psnr(from_ismrmrd, truth[:, j]) > psnr(zero_filled_rss(tmp_path, contrast), truth[:, j]) + 1.0


def test_contrasts_with_their_own_lines_keep_their_own_masks(tmp_path, capsys, small_images):
    from lpam.data.ismrmrd.contrasts import reconstruction_input

    width = SHAPE[1]
    centre = list(range(width // 2 - 2, width // 2 + 2))
    for j, (contrast, start) in enumerate((("T1", 0), ("T2", 2))):
        lines = sorted(set(range(start, width, 4)) | set(centre))
        write_cartesian(tmp_path / f"{contrast}.h5", coil_images(small_images[:, j], 4), lines)
    paths = [tmp_path / "T1.h5", tmp_path / "T2.h5"]
    _, physics, _ = reconstruction_input(paths)
    assert physics.mask.shape == (1, 2, *SHAPE) and not torch.equal(physics.mask[0, 0], physics.mask[0, 1])
    code, _, err = run(capsys, "reconstruct", *paths, "--input-type", "ismrmrd", "--quiet", "--out", tmp_path / "out")
    assert code == 0, err
    assert np.isfinite(nibabel.load(tmp_path / "out" / "T2_lpam.nii.gz").get_fdata()).all()


@pytest.mark.parametrize("coils", [1, 4])
def test_radial_files_reconstruct(tmp_path, capsys, small_images, coils):
    from lpam.physics.radial import radial_operator

    points = radial_trajectory(SPOKES, None, "golden", SHAPE)
    operator = radial_operator(points, SHAPE)
    for j, contrast in enumerate(("T1", "T2")):
        images = torch.from_numpy(coil_images(small_images[:, j], coils))
        samples = torch.stack([operator.forward(images[:, c]) for c in range(coils)], dim=1)
        write_radial(tmp_path / f"{contrast}.h5", samples.numpy(), points.numpy(), SHAPE)
    code, out, err = run(capsys, "reconstruct", tmp_path / "T1.h5", tmp_path / "T2.h5", "--input-type", "ismrmrd",
                         "--quiet", "--out", tmp_path / "out")
    assert code == 0, err
    recon = nibabel.load(tmp_path / "out" / "T1_lpam.nii.gz").get_fdata()
    assert recon.shape == (2, *SHAPE) and np.isfinite(recon).all() and recon.max() > 0


# --- lpam prepare --format ismrmrd ---------------------------------------------------------------------------

def test_prepare_reads_fully_sampled_cartesian_files(tmp_path, capsys, small_images):
    root = tmp_path / "raw"
    for subject, layout in (("sub01", "{s}/{c}.h5"), ("sub02", "{s}_{c}.h5"), ("sub03", "{s}/{c}.h5")):
        for j, contrast in enumerate(("T1", "T2")):
            path = root / layout.format(s=subject, c=contrast)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_cartesian(path, coil_images(small_images[:, j], 4), range(SHAPE[1]))
    prepared = tmp_path / "prepared.npz"
    code, out, err = run(capsys, "prepare", "--data", root, "--size", *SHAPE, "--measured-kspace", "--keep-coils",
                         "--min-foreground", 0, "--quiet", "--out", prepared)
    assert code == 0, err
    assert "format ismrmrd" in out
    splits = [load_prepared(prepared, split) for split in ("train", "val", "test")]
    assert sorted({name for split in splits for name in split.subjects}) == ["sub01", "sub02", "sub03"]
    train = splits[0]
    assert train.images.shape[1:] == (2, *SHAPE) and train.coil_images.shape[1:3] == (2, 4)


@pytest.mark.parametrize("problem, message", [
    ("undersampled", r"undersampled \(\d+ of 36 phase-encode lines\).*fully sampled"),
    ("radial", r"radial data; `lpam prepare` needs Cartesian"),
])
def test_prepare_refuses_undersampled_and_radial_files(tmp_path, capsys, small_images, problem, message):
    root = tmp_path / "raw"
    root.mkdir()
    for j, contrast in enumerate(("T1", "T2")):
        path = root / f"sub01_{contrast}.h5"
        if problem == "radial":
            points = radial_trajectory(SPOKES, None, "golden", SHAPE).numpy()
            write_radial(path, np.ones((1, 1, points.shape[1]), np.complex64), points, SHAPE)
        else:
            write_cartesian(path, coil_images(small_images[:, j], 1), undersampled_lines(SHAPE[1]))
    out = tmp_path / "p.npz"
    code, _, err = run(capsys, "prepare", "--data", root, "--format", "ismrmrd", "--size", *SHAPE, "--quiet",
                       "--out", out)
    assert code == 2 and err.startswith("lpam prepare: error: ") and re.search(message, err), err
    assert not out.exists()


# --- errors -------------------------------------------------------------------------------------------------

def _bad_file(problem, path, other, images):
    """Write the T1 file with ``problem`` to ``path`` (and a valid T2 to ``other``)."""
    write_cartesian(other, coil_images(images[:, 1], 1), range(SHAPE[1]))
    valid = lambda target: write_cartesian(target, coil_images(images[:, 0], 1), range(SHAPE[1]))  # noqa: E731
    height, width = SHAPE
    if problem == "3-D encoding":
        write_cartesian(path, coil_images(images[:, 0], 1), range(width),
                        header=header_xml(2 * height, width, height, 1, 2, depth=4))
    elif problem == "spiral":
        write_cartesian(path, coil_images(images[:, 0], 1), range(width),
                        header=header_xml(2 * height, width, height, 1, 2, trajectory="spiral"))
    elif problem == "coil counts":
        write_cartesian(path, coil_images(images[:, 0], 1), range(width),
                        header=header_xml(2 * height, width, height, 4, 2))
    elif problem == "mismatched contrasts":
        write_cartesian(path, coil_images(images[:1, 0], 1), range(width))  # one slice, T2 has two
    elif problem == "no image data":
        write_cartesian(path, coil_images(images[:, 0], 1), [])  # noise and calibration only
    elif problem == "truncated":
        valid(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif problem == "corrupt":
        valid(path)
        raw = bytearray(path.read_bytes())
        raw[512:4096] = bytes(range(256)) * 14
        path.write_bytes(bytes(raw))
    elif problem == "not HDF5":
        path.write_text("this is not an ISMRMRD file\n")
    elif problem == "plain HDF5":
        with h5py.File(path, "w") as handle:
            handle["kspace"] = np.zeros((2, 8, 8), np.complex64)


@pytest.mark.parametrize("problem, message", [
    ("3-D encoding", r"3-D encoding \(encodedSpace matrix z = 4"),
    ("spiral", r"the spiral trajectory is not supported"),
    ("coil counts", r"inconsistent coil counts: acquisitions have \[1\] channels, the header 4"),
    ("mismatched contrasts", r"contrasts do not match: .*slices"),
    ("no image data", r"holds no image acquisitions"),
    ("truncated", r"cannot be read as ISMRMRD"),
    ("corrupt", r"cannot be read as ISMRMRD|not an ISMRMRD file"),
    ("not HDF5", r"cannot be read as ISMRMRD \(not HDF5"),
    ("plain HDF5", r"not an ISMRMRD file"),
])
def test_bad_ismrmrd_files_are_refused(tmp_path, capsys, small_images, problem, message):
    t1, t2, out = tmp_path / "T1.h5", tmp_path / "T2.h5", tmp_path / "out"
    _bad_file(problem, t1, t2, small_images)
    code, _, err = run(capsys, "reconstruct", t1, t2, "--input-type", "ismrmrd", "--quiet", "--out", out)
    assert code == 2, err
    assert err.startswith("lpam reconstruct: error: ") and re.search(message, err), err
    assert "Traceback" not in err and not out.exists()
