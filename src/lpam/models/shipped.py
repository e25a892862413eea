"""The shipped weights and what each was trained for, and the default model for a request: `lpam evaluate`,
`lpam reconstruct` and `lpam demo` take the model trained for the requested mask kind, sampling rate (or
acceleration), contrasts and coils when no checkpoint is given, and the nearest one, with a warning, when no
shipped model was trained for the request. A trajectory request (``radial-golden-64``) takes a model trained
for that trajectory (``trajectory=TrajectorySpec(...)``), else the nearest in spokes of its kind, else the
radial (gridded-mask) default.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lpam.physics.masks import MaskSpec
from lpam.physics.radial import TrajectorySpec

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
KIND_MISMATCH = 10.0  # cost of another mask kind, above any rate distance (log ratio) of the same kind
EXACT = 1e-6  # a rate within this (log ratio) of a trained rate is the trained rate


@dataclass(frozen=True)
class ShippedModel:
    """Weights in ``WEIGHTS_DIR`` trained on ``kinds`` of masks at nominal sampling ``rates`` (1 / acceleration for
    Cartesian masks), for ``contrasts``, on single-coil k-space (they run on multi-coil data through its maps)."""

    weights: str
    kinds: tuple[str, ...]
    rates: tuple[float, ...]
    contrasts: tuple[str, ...] = ("T1", "T2")
    family: str = "lpam-net"  # lpam-net, or unet-joint (the benchmark's learned baseline)
    # trained on k-space of this trajectory (the NUFFT; kinds and rates then empty)
    trajectory: TrajectorySpec | None = None

    def describe(self) -> str:
        if self.trajectory is not None:
            return f"{self.weights} (trained on the {self.trajectory.label()} trajectory, {', '.join(self.contrasts)})"
        rates = ", ".join(f"{1 / r:g}x" if self.kinds[0].startswith("cartesian") else f"{r:.0%}" for r in self.rates)
        return f"{self.weights} (trained on {' / '.join(self.kinds)} masks at {rates}, {', '.join(self.contrasts)})"


SHIPPED: tuple[ShippedModel, ...] = (
    ShippedModel("lpam_net_joint_radial20.pt", ("radial",), (0.2,)),
    ShippedModel("lpam_net_joint3_radial20.pt", ("radial",), (0.2,), ("T1", "T2", "PD")),
    ShippedModel("unet_joint_radial20.pt", ("radial",), (0.2,), family="unet-joint"),
    ShippedModel("lpam_net_joint_cartesian.pt", ("cartesian-random", "cartesian-equispaced"), (0.25, 0.125)),
    ShippedModel("unet_joint_cartesian.pt", ("cartesian-random", "cartesian-equispaced"), (0.25, 0.125),
                 family="unet-joint"),
    ShippedModel("lpam_net_joint_golden64.pt", (), (), trajectory=TrajectorySpec("radial-golden", 64)),
)


def _trajectory_cost(model: ShippedModel, request: TrajectorySpec) -> float:
    """A trajectory request: its kind at the nearest spokes (log ratio), then another trajectory kind, then the
    radial mask models, then the rest."""
    if model.trajectory is None:
        return (2 if "radial" in model.kinds else 3) * KIND_MISMATCH
    distance = abs(math.log(model.trajectory.spokes / request.spokes))
    return distance + (0.0 if model.trajectory.kind == request.kind else KIND_MISMATCH)


def _cost(model: ShippedModel, mask: MaskSpec | TrajectorySpec) -> float:
    if isinstance(mask, TrajectorySpec):
        return _trajectory_cost(model, mask)
    if model.trajectory is not None:  # a trajectory model for a mask: after every mask model
        return 3 * KIND_MISMATCH
    rate = mask.nominal_rate()
    distance = min(abs(math.log(rate / trained)) for trained in model.rates)
    return distance + (0.0 if mask.kind in model.kinds else KIND_MISMATCH)


def shipped_model_for(mask: MaskSpec | TrajectorySpec, contrasts: Sequence[str] = ("T1", "T2"),
                      family: str = "lpam-net") -> tuple[ShippedModel, bool]:
    """(the shipped model of ``family`` nearest the request, whether it was trained for it); a ValueError when no
    shipped model of the family reconstructs ``contrasts``."""
    candidates = [m for m in SHIPPED if m.contrasts == tuple(contrasts) and m.family == family]
    if not candidates:
        offered = "; ".join(", ".join(m.contrasts) for m in SHIPPED if m.family == family)
        raise ValueError(f"no shipped model reconstructs {', '.join(contrasts)} (shipped: {offered}); train one "
                         "with `lpam train` and give --checkpoint")
    chosen = min(candidates, key=lambda m: _cost(m, mask))
    return chosen, _cost(chosen, mask) <= EXACT


def default_model(mask: MaskSpec | TrajectorySpec, contrasts: Sequence[str] = ("T1", "T2"),
                  coils: int | None = None) -> tuple[Path, str, str | None]:
    """(weights, what they were trained for, a warning or None) of the shipped LPAM-net for ``mask``,
    ``contrasts`` and ``coils`` (None or 1: single-coil)."""
    chosen, trained = shipped_model_for(mask, contrasts)
    notes = []
    if not trained:
        notes.append(f"no shipped model was trained for {mask.label()}")
    if coils not in (None, 1):
        notes.append(f"no shipped model was trained on {coils}-coil k-space (the maps carry the coils)")
    warning = f"{'; '.join(notes)}: using the nearest, {chosen.describe()}" if notes else None
    return WEIGHTS_DIR / chosen.weights, chosen.describe(), warning


def resolve_checkpoint(checkpoint: str | Path | None, mask: MaskSpec | TrajectorySpec,
                       contrasts: Sequence[str] = ("T1", "T2"), coils: int | None = None) -> tuple[Path, str]:
    """(checkpoint, what it is): ``checkpoint`` itself when given, else the shipped model for the request
    (:func:`default_model`; a warning when none was trained for it)."""
    if checkpoint is not None:
        return Path(checkpoint), str(checkpoint)
    path, described, warning = default_model(mask, contrasts, coils)
    if warning is not None:
        warnings.warn(warning, stacklevel=2)
    return path, described
