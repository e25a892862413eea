"""The phase count a network runs at inference, chosen on the Cartesian validation set: zero-filled and the
network in convergent mode at several phase counts, on the validation slices and masks of a training config
(by default configs/cartesian_cpu.yaml: random and equispaced lines at 4x and 8x). ``--store`` writes the
chosen count into the checkpoint as ``convergent_phases`` (the count a convergent-mode call without
``--phases`` runs): the smallest count within CHOICE_TOLERANCE_DB of the best validation PSNR (mean over the
contrasts).

    python scripts/cartesian_phases.py [--checkpoint CKPT] [--config configs/cartesian_cpu.yaml] [--phases 7 14 28]
        [--store]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from lpam.checkpoint import load_model, set_inference_options
from lpam.metrics import evaluate_contrasts
from lpam.training.config import TrainConfig
from lpam.training.samples import validation_data
from lpam.training.trainer import validate

CHOICE_TOLERANCE_DB = 0.05  # a larger count must gain more than this to be chosen (each phase costs run time)


def psnrs(metrics: dict, contrasts: list[str]) -> list[float]:
    return [metrics[c]["psnr"]["mean"] for c in contrasts]


def shown(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def chosen_count(scores: dict[int, list[float]]) -> int:
    """The smallest phase count whose mean PSNR is within CHOICE_TOLERANCE_DB of the best."""
    best = max(np.mean(v) for v in scores.values())
    return min(count for count, v in scores.items() if np.mean(v) >= best - CHOICE_TOLERANCE_DB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped radial network")
    parser.add_argument("--config", default="configs/cartesian_cpu.yaml")
    parser.add_argument("--phases", type=int, nargs="+", default=[7, 14, 28])
    parser.add_argument("--store", action="store_true", help="store the chosen count in --checkpoint")
    args = parser.parse_args()
    config = TrainConfig.load(args.config)
    contrasts = list(config.data.contrasts)
    kspace, physics, targets = validation_data(config)
    zero_filled = evaluate_contrasts(physics.adjoint(kspace).numpy(), targets.numpy(), contrasts)
    print(f"{kspace.shape[0]} validation slices; zero-filled {shown(psnrs(zero_filled, contrasts))} dB")
    model = load_model(args.checkpoint)
    scores = {}
    for phases in args.phases:
        metrics = validate(model, (kspace, physics, targets), phases, "convergent", contrasts, torch.device("cpu"))
        scores[phases] = psnrs(metrics, contrasts)
        print(f"{phases} phases (convergent): {shown(scores[phases])} dB", flush=True)
    count = chosen_count(scores)
    print(f"chosen: {count} phases (the smallest within {CHOICE_TOLERANCE_DB} dB of the best)")
    if args.store:
        if args.checkpoint is None:
            parser.error("--store needs --checkpoint (the shipped default is not changed implicitly)")
        set_inference_options(args.checkpoint, {"convergent_phases": count})
        print(f"stored convergent_phases {count} in {args.checkpoint}")


if __name__ == "__main__":
    main()
