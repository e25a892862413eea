"""A network run for more phases on the Cartesian validation set (a measurement, not a test): zero-filled and
the network in convergent mode at several phase counts, on the validation slices and masks of a training
config (by default configs/cartesian_cpu.yaml: random and equispaced lines at 4x and 8x, 3 slices each).

    python scripts/cartesian_phases.py [--checkpoint CKPT] [--config configs/cartesian_cpu.yaml] [--phases 7 14 28]
"""
from __future__ import annotations

import argparse
import torch

from lpam.checkpoint import load_model
from lpam.metrics import evaluate_contrasts
from lpam.training.config import TrainConfig
from lpam.training.samples import validation_data
from lpam.training.trainer import validate


def mean_psnr(metrics: dict, contrasts: list[str]) -> str:
    return " / ".join(f"{metrics[c]['psnr']['mean']:.2f}" for c in contrasts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped radial network")
    parser.add_argument("--config", default="configs/cartesian_cpu.yaml")
    parser.add_argument("--phases", type=int, nargs="+", default=[7, 14, 28])
    args = parser.parse_args()
    config = TrainConfig.load(args.config)
    contrasts = list(config.data.contrasts)
    kspace, physics, targets = validation_data(config)
    zero_filled = evaluate_contrasts(physics.adjoint(kspace).numpy(), targets.numpy(), contrasts)
    print(f"{kspace.shape[0]} validation slices; zero-filled {mean_psnr(zero_filled, contrasts)} dB")
    model = load_model(args.checkpoint)
    for phases in args.phases:
        metrics = validate(model, (kspace, physics, targets), phases, "convergent", contrasts, torch.device("cpu"))
        print(f"{phases} phases (convergent): {mean_psnr(metrics, contrasts)} dB", flush=True)


if __name__ == "__main__":
    main()
