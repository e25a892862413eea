"""The Cartesian 4-coil, 4x ISMRMRD case of tests/test_ismrmrd.py (test slices 107-108 pooled to 80x90, 2x
readout oversampling, a noise scan and calibration-only lines) reconstructed by `lpam reconstruct` with the
shipped model in plain mode and in convergent mode at several phase counts: PSNR per contrast against the
truth, and of the zero-filled root sum of squares (README, "Robustness on Cartesian lines").

    python scripts/ismrmrd_phases.py [--phases 10 20 40]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nibabel
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_ismrmrd as case  # noqa: E402  (the test's file writer and truth)

from lpam.cli import main  # noqa: E402
from lpam.physics.fourier import ifft2c  # noqa: E402

CONTRASTS = ("T1", "T2")


def write_case(folder: Path) -> np.ndarray:
    """The case's ISMRMRD files T1.h5 and T2.h5 in ``folder`` and their undersampled k-space as .npy; returns
    the truth (2 slices, 2 contrasts, 80, 90)."""
    truth = torch.nn.functional.avg_pool2d(case.load_split("test", slices=[9, 10]).images, case.POOL).numpy()
    lines = case.undersampled_lines(case.TARGET_SHAPE[1])
    for j, contrast in enumerate(CONTRASTS):
        kspace = case.write_cartesian(folder / f"{contrast}.h5", case.coil_images(truth[:, j], 4), lines)
        mask = np.zeros(case.TARGET_SHAPE, dtype=bool)
        mask[:, lines] = True
        np.save(folder / f"{contrast}.npy", kspace * mask)
    return truth


def main_script() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, nargs="+", default=[10, 20, 40])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    truth = write_case(folder)
    rss = [case.psnr(torch.linalg.vector_norm(ifft2c(torch.from_numpy(np.load(folder / f"{c}.npy"))), dim=1).numpy(),
                     truth[:, j]) for j, c in enumerate(CONTRASTS)]
    print("zero-filled RSS: " + " / ".join(f"{v:.2f}" for v in rss))
    runs = [("plain", ["--mode", "plain"])] + [(f"convergent, {n} phases", ["--mode", "convergent", "--phases", str(n)])
                                               for n in args.phases]
    for label, options in runs:
        out = folder / label.replace(" ", "_").replace(",", "")
        main(["reconstruct", str(folder / "T1.h5"), str(folder / "T2.h5"), "--input-type", "ismrmrd", "--quiet",
              "--out", str(out), *options])
        scores = [case.psnr(nibabel.load(out / f"{c}_lpam.nii.gz").get_fdata(), truth[:, j])
                  for j, c in enumerate(CONTRASTS)]
        print(f"{label}: " + " / ".join(f"{v:.2f}" for v in scores))


if __name__ == "__main__":
    main_script()
