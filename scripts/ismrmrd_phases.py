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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_ismrmrd as case  # noqa: E402  (the case's files, truth and metric: one definition)

from lpam.cli import main  # noqa: E402

CONTRASTS = ("T1", "T2")


def main_script() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, nargs="+", default=[10, 20, 40])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    truth = case.write_cartesian_4_coil_case(folder)
    rss = [case.psnr(case.zero_filled_rss(folder, c), truth[:, j]) for j, c in enumerate(CONTRASTS)]
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
