"""The methods and masks of `lpam benchmark` (kept apart from lpam.evaluation so that the CLI can list
them without importing the evaluation machinery)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lpam.physics.masks import MaskSpec
from lpam.physics.radial import TrajectorySpec

BENCHMARK_MASKS: dict[str, MaskSpec] = {
    spec.label(): spec
    for spec in [MaskSpec("radial", rate) for rate in (0.1, 0.2, 0.3, 0.4)]
    + [MaskSpec(f"cartesian-{kind}", None, acceleration, 0.32 / acceleration)  # fastMRI's centre fractions
       for kind in ("random", "equispaced") for acceleration in (4.0, 8.0)]
}
# the trajectories `lpam benchmark --masks radial-golden-64 ...` takes (not run by default): the radial NUFFT
BENCHMARK_TRAJECTORIES: dict[str, TrajectorySpec] = {
    spec.label(): spec for spec in (TrajectorySpec("radial-golden", 64), TrajectorySpec("radial-uniform", 64))
}
BENCHMARK_SAMPLINGS: dict[str, MaskSpec | TrajectorySpec] = {**BENCHMARK_MASKS, **BENCHMARK_TRAJECTORIES}
PRIMARY_MASK = "radial-0.20"


@dataclass
class LearnedMethod:
    """A learned method: its shipped weights (None: the shipped model of ``family`` trained for each mask,
    :mod:`lpam.models.shipped`), the inference mode and the contrasts it reconstructs."""

    weights: str | None
    mode: str = "plain"
    contrasts: tuple[str, ...] = ("T1", "T2")
    family: str = "lpam-net"


LEARNED: dict[str, LearnedMethod] = {
    # the default networks, convergent (docs/method.md section 4b), the one trained for each mask, in both modes
    "lpam-net": LearnedMethod(None),
    "lpam-net-convergent": LearnedMethod(None, "convergent"),
    # the radial default on masks it was not trained for (transfer; run where another model is the default)
    "lpam-net-radial": LearnedMethod("lpam_net_joint_radial20.pt"),
    # the earlier default, trained in plain mode with the free step rule: for comparison
    "lpam-net-plain-trained": LearnedMethod("lpam_net_joint_radial20_plain.pt"),
    "lpam-net-separate": LearnedMethod("lpam_net_separate_radial20.pt"),
    "unet-joint": LearnedMethod(None, family="unet-joint"),
    "lpam-net-3c": LearnedMethod(None, contrasts=("T1", "T2", "PD")),
}


@dataclass(frozen=True)
class TVMethod:
    """A TV baseline: its coupling, its solver (lpam.reconstruction.SOLVERS) and what it is, in words."""

    coupling: str
    solver: str
    description: str


TV_METHODS: dict[str, TVMethod] = {
    "joint-tv": TVMethod("joint", "lpam", "joint TV by classical LPAM (smoothed TV, a fixed iteration budget)"),
    "separate-tv": TVMethod("separate", "lpam", "separate TV by classical LPAM"),
    "joint-tv-pd": TVMethod("joint", "primal-dual",
                            "joint TV solved to convergence by the Condat-Vu primal-dual algorithm"),
}
CLASSICAL = ("zero-filled", *TV_METHODS)
METHODS = CLASSICAL + tuple(LEARNED)


def shipped_weights(method: str, mask_label: str = PRIMARY_MASK) -> Path:
    """The shipped checkpoint of the learned ``method`` for the benchmark mask (or trajectory) ``mask_label`` (in
    :data:`lpam.models.shipped.WEIGHTS_DIR`, where :func:`lpam.models.shipped.default_model` looks too)."""
    from lpam.models import shipped

    learned = LEARNED[method]
    if learned.weights is not None:
        return shipped.WEIGHTS_DIR / learned.weights
    model, _ = shipped.shipped_model_for(BENCHMARK_SAMPLINGS[mask_label], learned.contrasts, family=learned.family)
    return shipped.WEIGHTS_DIR / model.weights


def methods_for(contrasts: Sequence[str]) -> tuple[str, ...]:
    """The benchmark's default methods for ``contrasts``: the classical ones (any number of contrasts) and
    the learned ones trained on exactly these contrasts."""
    return CLASSICAL + tuple(name for name, method in LEARNED.items() if method.contrasts == tuple(contrasts))
