"""Which phases of a network take their learned step, per slice: plain and convergent PSNR and, in convergent
mode, one letter per phase (R: the learned step accepted, 1..m: accepted after that many halvings of its step
sizes, s: the safeguard), with the eps reductions (docs/method.md section 4b, the line search on the learned step).

    python scripts/learned_steps.py --checkpoint CKPT --mask cartesian-random --acceleration 4 \\
        [--learned-backtracks M] [--phases N] [--split test] [--slices 0,5,10,15]
"""
from __future__ import annotations

import argparse

import torch

from lpam.algorithm.lpam import History
from lpam.checkpoint import load_model
from lpam.data.sources import load_evaluation_data
from lpam.evaluation.scoring import evaluation_batch
from lpam.metrics import evaluate_contrasts
from lpam.physics.masks import MaskSpec
from lpam.workflows import run_network

CONTRASTS = ["T1", "T2"]


def phase_letters(history: History, sample: int) -> str:
    """R / halvings / s per phase of one sample."""
    return "".join(("R" if halvings == 0 else str(halvings)) if branch == "residual" else "s"
                   for branch, halvings in zip(history.branch[sample], history.backtracks[sample]))


def eps_reductions(history: History, sample: int) -> int:
    eps = history.eps[sample]
    return sum(later < earlier for earlier, later in zip(eps, eps[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--mask", default="cartesian-random")
    parser.add_argument("--acceleration", type=int, default=4)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--learned-backtracks", type=int, default=None, help="default: the checkpoint's")
    parser.add_argument("--phases", type=int, default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--slices", default="0,5,10,15", help="positions in the split (the benchmark's subset)")
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    if args.learned_backtracks is not None:
        model.constants.learned_backtracks = args.learned_backtracks
    positions = [int(p) for p in args.slices.split(",")]
    data = load_evaluation_data("embedded", args.split, positions, CONTRASTS)
    rate_or_acceleration = {"rate": args.rate, "acceleration": None if args.rate else args.acceleration}
    mask = MaskSpec(kind=args.mask, **rate_or_acceleration).build(tuple(data.images.shape[-2:]))
    kspace, physics, targets = evaluation_batch(data, mask, list(range(len(positions))))
    print(f"learned_backtracks = {model.constants.learned_backtracks}, {args.mask} "
          f"{args.rate or f'{args.acceleration}x'}, {args.split} slices {data.slice_ids}")
    for mode in ("plain", "convergent"):
        history = History()
        with torch.no_grad():
            out = run_network(model, kspace, physics, mode=mode, history=history, phases=args.phases)
        metrics = evaluate_contrasts(out.abs().numpy(), targets.numpy(), CONTRASTS)
        print(f"{mode}: " + " / ".join(f"{metrics[c]['psnr']['mean']:.2f}" for c in CONTRASTS) + " dB")
    for sample, slice_id in enumerate(data.slice_ids):
        print(f"  slice {slice_id}: {phase_letters(history, sample)}  ({eps_reductions(history, sample)} eps "
              f"reductions)")


if __name__ == "__main__":
    main()
