"""Speed of `lpam prepare` (a benchmark, not a test) on synthetic data of real sizes: BraTS-like NIfTI
(240x240x155 int16, .nii.gz) and M4Raw-like HDF5 (18 slices, 4 coils, 256x256 k-space plus
reconstruction_rss), with and without --measured-kspace. Reports seconds per file (one volume: one contrast,
or one repetition of it, of one subject) and source slices per second.

    python scripts/prepare_speed.py [--subjects 4] [--repetitions 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import nibabel
import numpy as np
import torch

from lpam.data.prepare import prepare
from lpam.physics.fourier import fft2c


def head(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W, S) ellipsoid head with noise, about 0..1000 like scanner intensities."""
    axes = [np.linspace(-1, 1, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    inside = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.9) ** 2 < 1
    return (inside * (600 + 300 * np.cos(6 * x) * np.sin(5 * y)) + 20 * rng.random(shape)).astype(np.float32)


def write_brats(root: Path, subjects: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(subjects):
        folder = root / f"BraTS_{i:05d}"
        folder.mkdir(parents=True)
        for name in ("t1", "t2"):
            volume = head((240, 240, 155), rng).astype(np.int16)
            nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), str(folder / f"BraTS_{i:05d}_{name}.nii.gz"))


def write_m4raw(root: Path, subjects: int, repetitions: int, coils: int = 4) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    y, x = np.meshgrid(np.linspace(-1, 1, 256), np.linspace(-1, 1, 256), indexing="ij")
    sensitivities = np.stack([np.exp(-((y - np.cos(a)) ** 2 + (x - np.sin(a)) ** 2)) for a in np.arange(coils) * 2 * np.pi / coils])
    for i in range(subjects):
        for contrast in ("T1", "T2"):
            for repetition in range(1, repetitions + 1):
                images = np.moveaxis(head((256, 256, 18), rng), -1, 0)[:, None] * sensitivities  # (S, coils, H, W)
                kspace = fft2c(torch.from_numpy(images.astype(np.complex64))).numpy()
                with h5py.File(root / f"20220610{i:02d}_{contrast}0{repetition}.h5", "w") as handle:
                    handle["kspace"] = kspace
                    handle["reconstruction_rss"] = np.sqrt((images ** 2).sum(1)).astype(np.float32)
                    handle.attrs["acquisition"] = f"AX{contrast}"


def timed(label: str, root: Path, out: Path, files: int, slices: int, **options) -> None:
    started = time.perf_counter()
    summary = prepare(root, out, progress=False, **options)
    seconds = time.perf_counter() - started
    kept = sum(part["slices"] for part in summary["splits"].values())
    print(f"{label}: {seconds:.1f} s for {files} files ({slices} source slices, {kept} kept): "
          f"{seconds / files:.2f} s per file, {slices / seconds:.0f} slices per second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--repetitions", type=int, default=1, help="HDF5 repetitions per contrast (M4Raw has 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_brats(tmp / "brats", args.subjects)
        volumes = 2 * args.subjects
        timed("BraTS NIfTI 240x240x155", tmp / "brats", tmp / "brats.npz", volumes, volumes * 155)
        write_m4raw(tmp / "m4raw", args.subjects, args.repetitions)
        files = volumes * args.repetitions
        timed("M4Raw HDF5 reconstruction_rss", tmp / "m4raw", tmp / "rss.npz", files, files * 18, size=(256, 256))
        timed("M4Raw HDF5 --measured-kspace (4 coils combined)", tmp / "m4raw", tmp / "measured.npz", files, files * 18,
              size=(256, 256), measured_kspace=True)


if __name__ == "__main__":
    main()
