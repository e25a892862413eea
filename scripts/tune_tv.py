"""Tune the TV baselines' weight per mask (a sweep, not a test): for every mask and trajectory of the benchmark
and both couplings, LPAM + TV on validation slices over a grid of lam, then eps0 around the best lam; the best
mean PSNR over the contrasts wins. Writes the table lpam.tv_tuning reads (src/lpam/weights/tv_weights.json).

    python scripts/tune_tv.py [--slices 2,7] [--iterations 200] [--masks ...] [--update] [--out TABLE]

``--masks`` takes mask labels (radial-0.20, cartesian-random-4x, ...) and trajectory labels (radial-golden-64,
radial-uniform-64); ``--update`` adds the tuned entries to the existing table instead of rewriting it.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lpam.data.embedded import load_split, simulate_acquisition
from lpam.io import save_json
from lpam.methods import BENCHMARK_SAMPLINGS, BENCHMARK_TRAJECTORIES
from lpam.metrics import evaluate_contrasts
from lpam.options import parse_slices
from lpam.physics.mri import ContrastPhysics
from lpam.reconstruction import TVSettings, reconstruct_tv
from lpam.tv_tuning import COUPLINGS, TABLE, tuned_table

LAMS = (0.001, 0.002, 0.004, 0.006, 0.01, 0.015, 0.025)  # around the radial-20% value 0.006
# trajectories: the density-weighted data term (docs/method.md section 5) asks for smaller weights
TRAJECTORY_LAMS = (0.0001, 0.0002, 0.0005, 0.001, 0.002)
EPS0S = (0.02, 0.05, 0.1)  # tried at the best lam; 0.05 is the radial-20% value


def mean_psnr(images: torch.Tensor, kspace: torch.Tensor, physics: ContrastPhysics, settings: TVSettings) -> float:
    recon, _ = reconstruct_tv(kspace, physics, settings)
    metrics = evaluate_contrasts(recon.numpy(), images.numpy(), ["T1", "T2"])
    return float(np.mean([metrics[c]["psnr"]["mean"] for c in ("T1", "T2")]))


def tune(images: torch.Tensor, label: str, coupling: str, iterations: int) -> dict:
    """The best (lam, eps0) for one mask (or trajectory) and coupling, with every PSNR of the sweep."""
    kspace, physics, _ = simulate_acquisition(images, BENCHMARK_SAMPLINGS[label])
    lams = TRAJECTORY_LAMS if label in BENCHMARK_TRAJECTORIES else LAMS
    by_lam = {lam: mean_psnr(images, kspace, physics, TVSettings(lam=lam, coupling=coupling, iterations=iterations))
              for lam in lams}
    lam = max(by_lam, key=by_lam.get)
    by_eps0 = {0.05: by_lam[lam]}
    for eps0 in EPS0S:
        if eps0 not in by_eps0:
            by_eps0[eps0] = mean_psnr(images, kspace, physics,
                                      TVSettings(lam=lam, eps0=eps0, coupling=coupling, iterations=iterations))
    eps0 = max(by_eps0, key=by_eps0.get)
    print(f"{coupling:8s} {label:24s} lam {lam:<6g} eps0 {eps0:<5g} {by_eps0[eps0]:.2f} dB", flush=True)
    return {**BENCHMARK_SAMPLINGS[label].describe(), "lam": lam, "eps0": eps0, "val_psnr": round(by_eps0[eps0], 3),
            "sweep_lam": {str(k): round(v, 3) for k, v in by_lam.items()},
            "sweep_eps0": {str(k): round(v, 3) for k, v in by_eps0.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", default="2,7", help="validation positions (default: axial 86 and 91)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--masks", nargs="+", default=list(BENCHMARK_SAMPLINGS), choices=list(BENCHMARK_SAMPLINGS))
    parser.add_argument("--update", action="store_true", help="add the entries to the existing table")
    parser.add_argument("--out", default=str(TABLE))
    args = parser.parse_args()
    data = load_split("val", slices=parse_slices(args.slices))
    started = time.perf_counter()
    settings = {coupling: {label: tune(data.images, label, coupling, args.iterations) for label in args.masks}
                for coupling in COUPLINGS}
    sweep = {"split": "val", "axial": [int(z) for z in data.axial_indices], "iterations": args.iterations,
             "lams": list(LAMS), "trajectory_lams": list(TRAJECTORY_LAMS), "eps0s": list(EPS0S),
             "seconds": round(time.perf_counter() - started), "command": "python scripts/tune_tv.py"}
    if args.update:
        table = tuned_table()
        for coupling in COUPLINGS:
            settings[coupling] = {**table["settings"][coupling], **settings[coupling]}
        sweep = {**table["sweep"], "trajectory_lams": list(TRAJECTORY_LAMS),
                 "updated": {"masks": args.masks, "seconds": sweep["seconds"],
                             "command": "python scripts/tune_tv.py --update --masks " + " ".join(args.masks)}}
    save_json({"settings": settings, "sweep": sweep}, args.out)


if __name__ == "__main__":
    main()
