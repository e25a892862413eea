"""Tune the TV baselines' weight per mask (a sweep, not a test): for every mask and trajectory of the benchmark
and both couplings, TV on validation slices over a grid of lam (LPAM: then eps0 around the best lam); the best
mean PSNR over the contrasts wins. Writes the table lpam.tv_tuning reads (src/lpam/weights/tv_weights.json).

    python scripts/tune_tv.py [--slices 2,7] [--iterations 200] [--masks ...] [--update] [--out TABLE]
    python scripts/tune_tv.py --solver primal-dual --update [--iterations 1000] [--masks ...]

``--masks`` takes mask labels (radial-0.20, cartesian-random-4x, ...) and trajectory labels (radial-golden-64,
radial-uniform-64); ``--update`` adds the tuned entries to the existing table instead of rewriting it.
``--solver primal-dual`` (the TV model solved to convergence, lpam.algorithm.primal_dual) sweeps lam only and
writes each entry's ``primal_dual`` sub-entry {"lam", "val_psnr", "sweep_lam"}, leaving LPAM's values as they
are (it needs ``--update`` and the masks' LPAM entries).
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
from lpam.reconstruction import SOLVER_ITERATIONS, SOLVERS, TVSettings, reconstruct_tv
from lpam.tv_tuning import COUPLINGS, PRIMAL_DUAL_KEY, TABLE, tuned_table

LAMS = (0.001, 0.002, 0.004, 0.006, 0.01, 0.015, 0.025)  # around the radial-20% value 0.006
# trajectories: the density-weighted data term (docs/method.md section 5) asks for smaller weights
TRAJECTORY_LAMS = (0.0001, 0.0002, 0.0005, 0.001, 0.002)
EPS0S = (0.02, 0.05, 0.1)  # tried at the best lam; 0.05 is the radial-20% value
# per solver, unless --iterations: LPAM short (the sweep ranks weights), primal-dual its converged default
ITERATIONS = {"lpam": 200, "primal-dual": SOLVER_ITERATIONS["primal-dual"]}


def mean_psnr(images: torch.Tensor, kspace: torch.Tensor, physics: ContrastPhysics, settings: TVSettings) -> float:
    recon, _ = reconstruct_tv(kspace, physics, settings)
    metrics = evaluate_contrasts(recon.numpy(), images.numpy(), ["T1", "T2"])
    return float(np.mean([metrics[c]["psnr"]["mean"] for c in ("T1", "T2")]))


def sweep_lam(images: torch.Tensor, label: str, coupling: str, iterations: int,
              solver: str) -> tuple[dict[float, float], tuple]:
    """Mean PSNR for every lam of the grid (LAMS, or TRAJECTORY_LAMS for a trajectory), and the acquisition."""
    kspace, physics, _ = simulate_acquisition(images, BENCHMARK_SAMPLINGS[label])
    lams = TRAJECTORY_LAMS if label in BENCHMARK_TRAJECTORIES else LAMS
    by_lam = {lam: mean_psnr(images, kspace, physics,
                             TVSettings(lam=lam, coupling=coupling, iterations=iterations, solver=solver))
              for lam in lams}
    return by_lam, (kspace, physics)


def rounded(sweep: dict[float, float]) -> dict[str, float]:
    return {str(k): round(v, 3) for k, v in sweep.items()}


def tune(images: torch.Tensor, label: str, coupling: str, iterations: int) -> dict:
    """LPAM: the best (lam, eps0) for one mask (or trajectory) and coupling, with every PSNR of the sweep."""
    by_lam, (kspace, physics) = sweep_lam(images, label, coupling, iterations, "lpam")
    lam = max(by_lam, key=by_lam.get)
    by_eps0 = {0.05: by_lam[lam]}
    for eps0 in EPS0S:
        if eps0 not in by_eps0:
            by_eps0[eps0] = mean_psnr(images, kspace, physics,
                                      TVSettings(lam=lam, eps0=eps0, coupling=coupling, iterations=iterations))
    eps0 = max(by_eps0, key=by_eps0.get)
    print(f"{coupling:8s} {label:24s} lam {lam:<6g} eps0 {eps0:<5g} {by_eps0[eps0]:.2f} dB", flush=True)
    return {**BENCHMARK_SAMPLINGS[label].describe(), "lam": lam, "eps0": eps0, "val_psnr": round(by_eps0[eps0], 3),
            "sweep_lam": rounded(by_lam), "sweep_eps0": rounded(by_eps0)}


def tune_primal_dual(images: torch.Tensor, label: str, coupling: str, iterations: int) -> dict:
    """Primal-dual: the best lam for one mask (or trajectory) and coupling, with every PSNR of the sweep."""
    by_lam, _ = sweep_lam(images, label, coupling, iterations, "primal-dual")
    lam = max(by_lam, key=by_lam.get)
    print(f"{coupling:8s} {label:24s} primal-dual lam {lam:<6g} {by_lam[lam]:.2f} dB", flush=True)
    return {"lam": lam, "val_psnr": round(by_lam[lam], 3), "sweep_lam": rounded(by_lam)}


def primal_dual_table(data, masks: list[str], iterations: int, seconds_from: float) -> dict:
    """The shipped table with each mask's ``primal_dual`` sub-entry (re)written; LPAM's values untouched."""
    table = tuned_table()
    missing = [(c, m) for c in COUPLINGS for m in masks if m not in table["settings"][c]]
    if missing:
        raise SystemExit(f"no LPAM entry for {missing}: tune LPAM for these masks first")
    tuned = {c: {m: tune_primal_dual(data.images, m, c, iterations) for m in masks} for c in COUPLINGS}
    settings = {c: {m: {**e, **({PRIMAL_DUAL_KEY: tuned[c][m]} if m in tuned[c] else {})}
                    for m, e in table["settings"][c].items()} for c in COUPLINGS}
    earlier = table["sweep"].get(PRIMAL_DUAL_KEY, {})
    run = {"masks": masks, "seconds": round(time.perf_counter() - seconds_from),
           "command": "python scripts/tune_tv.py --solver primal-dual --update --masks " + " ".join(masks)}
    sweep = {**table["sweep"], PRIMAL_DUAL_KEY: {
        "split": "val", "axial": [int(z) for z in data.axial_indices], "iterations": iterations,
        "lams": list(LAMS), "trajectory_lams": list(TRAJECTORY_LAMS),
        "masks": [m for m in earlier.get("masks", []) if m not in masks] + masks,
        "runs": earlier.get("runs", []) + [run]}}
    return {"settings": settings, "sweep": sweep}


def lpam_table(data, masks: list[str], iterations: int, update: bool, seconds_from: float) -> dict:
    """The LPAM table (lam and eps0 per mask and coupling), merged into the shipped one with ``update``."""
    settings = {coupling: {label: tune(data.images, label, coupling, iterations) for label in masks}
                for coupling in COUPLINGS}
    sweep = {"split": "val", "axial": [int(z) for z in data.axial_indices], "iterations": iterations,
             "lams": list(LAMS), "trajectory_lams": list(TRAJECTORY_LAMS), "eps0s": list(EPS0S),
             "seconds": round(time.perf_counter() - seconds_from), "command": "python scripts/tune_tv.py"}
    if update:
        table = tuned_table()
        for coupling in COUPLINGS:
            settings[coupling] = {**table["settings"][coupling], **settings[coupling]}
        sweep = {**table["sweep"], "trajectory_lams": list(TRAJECTORY_LAMS),
                 "updated": {"masks": masks, "seconds": sweep["seconds"],
                             "command": "python scripts/tune_tv.py --update --masks " + " ".join(masks)}}
    return {"settings": settings, "sweep": sweep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", default="2,7", help="validation positions (default: axial 86 and 91)")
    parser.add_argument("--solver", default="lpam", choices=SOLVERS)
    parser.add_argument("--iterations", type=int, default=None, help=f"default by solver: {ITERATIONS}")
    parser.add_argument("--masks", nargs="+", default=list(BENCHMARK_SAMPLINGS), choices=list(BENCHMARK_SAMPLINGS))
    parser.add_argument("--update", action="store_true", help="add the entries to the existing table")
    parser.add_argument("--out", default=str(TABLE))
    args = parser.parse_args()
    if args.solver == "primal-dual" and not args.update:
        parser.error("--solver primal-dual adds sub-entries to the existing table: pass --update")
    iterations = args.iterations or ITERATIONS[args.solver]
    data = load_split("val", slices=parse_slices(args.slices))
    started = time.perf_counter()
    if args.solver == "primal-dual":
        table = primal_dual_table(data, args.masks, iterations, started)
    else:
        table = lpam_table(data, args.masks, iterations, args.update, started)
    save_json(table, args.out)


if __name__ == "__main__":
    main()
