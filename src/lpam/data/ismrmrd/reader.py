"""Reading ISMRMRD raw data (the ``ismrmrd`` package: ``/dataset/xml`` header, ``/dataset/data`` acquisitions)
into lpam's arrays.

Axes follow fastMRI: k-space and images are (x, y), rows along the readout x and columns along the phase
encode y, so Cartesian phase-encode lines are columns (lpam's line masks) and k-space is centred (DC at
(H // 2, W // 2), :func:`lpam.physics.fourier.fft2c`).

* Acquisitions flagged as noise measurement, calibration only (``ACQ_IS_PARALLEL_CALIBRATION`` without
  ``..._AND_IMAGING``), navigation, phase correction, feedback, dummy scan, surface-coil correction or phase
  stabilisation are skipped (and counted); the rest are the image acquisitions.
* Cartesian: each readout is placed at column ``kspace_encode_step_1 - centre + W // 2`` (centre from the
  header's encodingLimits) and row ``sample - center_sample + H // 2``, per slice (``idx.slice``); repeated
  lines (averages, repetitions) are averaged; samples in ``discard_pre`` / ``discard_post`` are zeroed. The mask
  is the columns present. Readout oversampling (encodedSpace matrix x > reconSpace matrix x) is removed the
  standard way: inverse FFT along the readout, centre crop to the reconSpace x, FFT back.
* Radial: samples and trajectories of each slice's acquisitions, in order. Trajectories are in units of 1 /
  FOV (cycles across the reconSpace field of view: the matrix edge is at +-N / 2, 2x readout oversampling
  shows as steps of 1/2), converted to lpam's radians per pixel, omega = 2 pi k / N: rows (omega of x, omega of
  y) over the (reconSpace x, reconSpace y) image grid, in [-pi, pi].
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from lpam.data.ismrmrd.header import CARTESIAN, Encoding, parse_header
from lpam.physics.fourier import fft2c, ifft2c

TRAJECTORY_AXES = 2  # (kx, ky) of the acquisitions' trajectories; a third (kz) would be 3-D
EDGE_TOLERANCE = 1e-6  # relative: trajectory points up to pi (1 + this) are on the k-space edge (float32 rounding)
SINGLE_VALUED_COUNTERS = ("contrast", "phase", "set")  # one file holds one of each (no multi-echo / cine)


@dataclass(frozen=True)
class IsmrmrdScan:
    """One ISMRMRD file read: ``kspace`` (S, Nc, H, W) centred with its ``mask`` (H, W) for Cartesian data, or
    radial samples (S, Nc, K) at ``points`` (2, K) radians per pixel; the image ``shape`` (H, W), the slice
    indices (``idx.slice``) in order, and the skipped acquisitions counted by kind."""

    path: Path
    trajectory: str
    kspace: np.ndarray
    shape: tuple[int, int]
    slices: tuple[int, ...]
    mask: np.ndarray | None = None
    points: np.ndarray | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def coils(self) -> int:
        """Nc, the receiver channels of the image acquisitions."""
        return self.kspace.shape[1]


def _skip_reasons() -> dict[str, tuple[int, ...]]:
    """Kind of non-image acquisition -> its flags (``ismrmrd.ACQ_*``)."""
    import ismrmrd

    return {
        "noise": (ismrmrd.ACQ_IS_NOISE_MEASUREMENT,),
        "navigation": (ismrmrd.ACQ_IS_NAVIGATION_DATA,),
        "phase correction": (ismrmrd.ACQ_IS_PHASECORR_DATA,),
        "feedback": (ismrmrd.ACQ_IS_HPFEEDBACK_DATA, ismrmrd.ACQ_IS_RTFEEDBACK_DATA),
        "dummy scan": (ismrmrd.ACQ_IS_DUMMYSCAN_DATA,),
        "surface coil correction": (ismrmrd.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,),
        "phase stabilisation": (ismrmrd.ACQ_IS_PHASE_STABILIZATION, ismrmrd.ACQ_IS_PHASE_STABILIZATION_REFERENCE),
    }


def skip_reason(acquisition) -> str | None:
    """Why an acquisition is not image data (a kind of :func:`_skip_reasons` or ``calibration`` for
    calibration-only lines), None for image data (calibration-and-imaging lines included)."""
    import ismrmrd

    if acquisition.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) \
            and not acquisition.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING):
        return "calibration"
    return next((kind for kind, flags in _skip_reasons().items() if any(map(acquisition.is_flag_set, flags))), None)


def _open(path: Path):
    """(encoding, image acquisitions, skipped counts) of one file; errors name the file."""
    import ismrmrd

    try:
        with ismrmrd.Dataset(str(path), "dataset", mode="r") as dataset:
            encoding = parse_header(dataset.read_xml_header(), path)
            acquisitions, skipped = [], {}
            for index in range(dataset.number_of_acquisitions()):
                acquisition = dataset.read_acquisition(index)
                reason = skip_reason(acquisition)
                if reason is None:
                    acquisitions.append(acquisition)
                else:
                    skipped[reason] = skipped.get(reason, 0) + 1
    except ValueError as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"{path}: cannot be read as ISMRMRD (corrupt or truncated?): {error}") from error
    except LookupError as error:  # the ismrmrd package: no /dataset group, header or acquisitions
        raise ValueError(f"{path}: not an ISMRMRD file: {error}") from error
    except Exception as error:  # h5py: not HDF5, truncated, damaged records
        raise ValueError(f"{path}: cannot be read as ISMRMRD (not HDF5, corrupt or truncated?): {error}") from error
    return encoding, acquisitions, skipped


def _check_acquisitions(acquisitions: list, encoding: Encoding, path: Path) -> int:
    """The coil count shared by the image acquisitions; errors for no image data, differing coil counts and
    several contrasts, cardiac phases or sets in one file."""
    if not acquisitions:
        raise ValueError(f"{path}: holds no image acquisitions (only noise, calibration or other non-image data)")
    coils = {acquisition.active_channels for acquisition in acquisitions}
    if len(coils) > 1 or (encoding.coils is not None and coils != {encoding.coils}):
        header = "" if encoding.coils is None else f", the header {encoding.coils} receiver channels"
        raise ValueError(f"{path}: inconsistent coil counts: acquisitions have {sorted(coils)} channels{header}")
    for counter in SINGLE_VALUED_COUNTERS:
        values = {getattr(acquisition.idx, counter) for acquisition in acquisitions}
        if len(values) > 1:
            raise ValueError(f"{path}: holds {len(values)} values of idx.{counter}; lpam reads one {counter} per file")
    return coils.pop()


def _readout(acquisition, size: int, index: int, path: Path) -> np.ndarray:
    """One readout (Nc, ``size``) with the discarded samples zeroed, its ``center_sample`` at ``size // 2``."""
    data = np.array(acquisition.data, dtype=np.complex64)
    samples = data.shape[1]
    data[:, :acquisition.discard_pre] = 0
    data[:, samples - acquisition.discard_post:] = 0
    start = size // 2 - acquisition.center_sample
    if start < 0 or start + samples > size:
        raise ValueError(f"{path}: acquisition {index} has {samples} samples centred at {acquisition.center_sample}, "
                         f"which do not fit the encoded readout of {size}")
    line = np.zeros((data.shape[0], size), dtype=np.complex64)
    line[:, start:start + samples] = data
    return line


def _remove_oversampling(grid: np.ndarray, size: int) -> np.ndarray:
    """Centre crop of the readout (rows) to ``size`` in image space: inverse FFT, crop, FFT back."""
    if size == grid.shape[-2]:
        return grid
    start = grid.shape[-2] // 2 - size // 2
    image = ifft2c(torch.from_numpy(grid))[..., start:start + size, :]
    return fft2c(image).numpy()


def _cartesian(acquisitions: list, encoding: Encoding, coils: int, path: Path) -> IsmrmrdScan:
    """Phase-encode lines placed and averaged per slice, the mask of the lines present (equal in every slice)."""
    readout, lines = encoding.encoded_matrix
    slices = sorted({acquisition.idx.slice for acquisition in acquisitions})
    position = {value: s for s, value in enumerate(slices)}
    grid = np.zeros((len(slices), coils, readout, lines), dtype=np.complex64)
    counts = np.zeros((len(slices), lines))
    for index, acquisition in enumerate(acquisitions):
        column = acquisition.idx.kspace_encode_step_1 - encoding.step1_center + lines // 2
        if not 0 <= column < lines:
            raise ValueError(f"{path}: acquisition {index} has kspace_encode_step_1 = "
                             f"{acquisition.idx.kspace_encode_step_1}, outside the {lines} encoded lines "
                             f"(centre {encoding.step1_center})")
        s = position[acquisition.idx.slice]
        grid[s, :, :, column] += _readout(acquisition, readout, index, path)
        counts[s, column] += 1
    present = counts > 0
    for value, lines_present in zip(slices[1:], present[1:]):
        if not np.array_equal(lines_present, present[0]):
            raise ValueError(f"{path}: slice {value} samples other phase-encode lines than slice {slices[0]}; "
                             "lpam needs one sampling pattern per file")
    grid /= np.maximum(counts, 1)[:, None, None, :].astype(np.float32)
    mask = np.broadcast_to(present[0], (encoding.readout_size, lines)).copy()
    kspace = _remove_oversampling(grid, encoding.readout_size) * mask
    return IsmrmrdScan(path, CARTESIAN, kspace.astype(np.complex64), mask.shape, tuple(slices), mask=mask)


def _spokes(acquisitions: list, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(samples (Nc, K), trajectory (K, 2)) of radial acquisitions in order, discarded samples dropped."""
    samples, trajectory = [], []
    for index, acquisition in enumerate(acquisitions):
        if acquisition.trajectory_dimensions < TRAJECTORY_AXES:
            raise ValueError(f"{path}: radial acquisition {index} stores no (kx, ky) trajectory "
                             f"(trajectory_dimensions = {acquisition.trajectory_dimensions})")
        kept = slice(acquisition.discard_pre, acquisition.number_of_samples - acquisition.discard_post)
        samples.append(np.asarray(acquisition.data)[:, kept])
        trajectory.append(np.asarray(acquisition.traj)[kept, :TRAJECTORY_AXES])
    return np.concatenate(samples, axis=1), np.concatenate(trajectory)


def _radial(acquisitions: list, encoding: Encoding, path: Path) -> IsmrmrdScan:
    """Samples per slice at one trajectory (equal in every slice), in radians per pixel."""
    shape = encoding.recon_matrix
    slices = sorted({acquisition.idx.slice for acquisition in acquisitions})
    per_slice = [_spokes([a for a in acquisitions if a.idx.slice == value], path) for value in slices]
    for value, (_, trajectory) in zip(slices[1:], per_slice[1:]):
        if trajectory.shape != per_slice[0][1].shape or not np.allclose(trajectory, per_slice[0][1]):
            raise ValueError(f"{path}: slice {value} has another trajectory than slice {slices[0]}; lpam needs one "
                             "trajectory per file")
    points = 2 * math.pi * per_slice[0][1].T / np.array(shape, dtype=np.float64)[:, None]
    if np.abs(points).max() > math.pi * (1 + EDGE_TOLERANCE):
        reach = float(np.abs(per_slice[0][1]).max())
        raise ValueError(f"{path}: the trajectory reaches |k| = {reach:g}, beyond the {shape[0]} x {shape[1]} "
                         "matrix; lpam expects trajectories in units of 1 / FOV (edge at +-N / 2)")
    kspace = np.stack([samples for samples, _ in per_slice]).astype(np.complex64)
    return IsmrmrdScan(path, encoding.trajectory, kspace, shape, tuple(slices), points=np.clip(points, -math.pi, math.pi))


def read_ismrmrd(path: str | Path) -> IsmrmrdScan:
    """Read one ISMRMRD file (module docstring); a ValueError naming the file for a missing, unreadable,
    corrupt or unsupported one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    encoding, acquisitions, skipped = _open(path)
    coils = _check_acquisitions(acquisitions, encoding, path)
    if encoding.trajectory == CARTESIAN:
        scan = _cartesian(acquisitions, encoding, coils, path)
    else:
        scan = _radial(acquisitions, encoding, path)
    if not np.isfinite(scan.kspace).all():
        raise ValueError(f"{path}: the acquisitions contain NaN or infinite values")
    return replace(scan, skipped=skipped)
