"""The methods and masks of `lpam benchmark` (kept apart from lpam.evaluation so that the CLI can list
them without importing the evaluation machinery)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lpam.physics.masks import MaskSpec

BENCHMARK_MASKS: dict[str, MaskSpec] = {
    spec.label(): spec
    for spec in [MaskSpec("radial", rate) for rate in (0.1, 0.2, 0.3, 0.4)]
    + [MaskSpec(f"cartesian-{kind}", None, acceleration, 0.32 / acceleration)  # fastMRI's centre fractions
       for kind in ("random", "equispaced") for acceleration in (4.0, 8.0)]
}
PRIMARY_MASK = "radial-0.20"


@dataclass
class LearnedMethod:
    """A learned method: shipped weights, the inference mode and the contrasts it reconstructs."""

    weights: str
    mode: str = "plain"
    contrasts: tuple[str, ...] = ("T1", "T2")


LEARNED: dict[str, LearnedMethod] = {
    # the default weights, a convergent network (docs/method.md section 4b), in both modes
    "lpam-net": LearnedMethod("lpam_net_joint_radial20.pt"),
    "lpam-net-convergent": LearnedMethod("lpam_net_joint_radial20.pt", "convergent"),
    # the earlier default, trained in plain mode with the free step rule: for comparison
    "lpam-net-plain-trained": LearnedMethod("lpam_net_joint_radial20_plain.pt"),
    "lpam-net-separate": LearnedMethod("lpam_net_separate_radial20.pt"),
    "unet-joint": LearnedMethod("unet_joint_radial20.pt"),
    "lpam-net-3c": LearnedMethod("lpam_net_joint3_radial20.pt", contrasts=("T1", "T2", "PD")),
}
CLASSICAL = ("zero-filled", "joint-tv", "separate-tv")
METHODS = CLASSICAL + tuple(LEARNED)


def shipped_weights(method: str) -> Path:
    """The shipped checkpoint of the learned ``method`` (in :data:`lpam.checkpoint.WEIGHTS_DIR`)."""
    from lpam import checkpoint  # torch and the models load only when weights are needed

    return checkpoint.WEIGHTS_DIR / LEARNED[method].weights


def methods_for(contrasts: Sequence[str]) -> tuple[str, ...]:
    """The benchmark's default methods for ``contrasts``: the classical ones (any number of contrasts) and
    the learned ones trained on exactly these contrasts."""
    return CLASSICAL + tuple(name for name, method in LEARNED.items() if method.contrasts == tuple(contrasts))
