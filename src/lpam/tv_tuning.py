"""TV weights tuned per mask: the table ``weights/tv_weights.json`` written by ``scripts/tune_tv.py`` (a sweep of
lam and eps0 on the validation slab for every mask of the benchmark), so that no TV baseline runs with a weight
tuned for another mask (docs/method.md section 7).

A mask the table does not hold takes the entry of the same kind nearest in sampling rate (1 / acceleration
for Cartesian masks), else the entry nearest in rate of any kind, and says so. A trajectory (``radial-golden-64``)
takes its entry, else the trajectory entry nearest in spokes (its own kind first).
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from lpam.physics.masks import MaskSpec
from lpam.physics.radial import TrajectorySpec
from lpam.reconstruction import TVSettings

TABLE = Path(__file__).parent / "weights" / "tv_weights.json"
COUPLINGS = ("joint", "separate")


@lru_cache(maxsize=1)
def tuned_table() -> dict:
    """The shipped table: {"settings": {coupling: {mask label: {"lam", "eps0", ...}}}, "sweep": {...}}."""
    return json.loads(TABLE.read_text())


def _spec_of(entry: dict) -> MaskSpec:
    return MaskSpec(entry["kind"], entry.get("rate"), entry.get("acceleration"))


def _distance(entry: dict, request: MaskSpec | TrajectorySpec) -> float:
    """|log ratio| of the entry's and the request's sampling rates (masks) or spoke counts (trajectories)."""
    if isinstance(request, TrajectorySpec):
        return abs(math.log(entry["spokes"] / request.spokes))
    return abs(math.log(_spec_of(entry).nominal_rate() / request.nominal_rate()))


def tuned_tv(mask: MaskSpec | TrajectorySpec, coupling: str = "joint") -> tuple[float, float, str | None]:
    """(lam, eps0, note) for ``mask`` (or a trajectory): the tuned entry of its label, else the nearest of its
    family (masks or trajectories; the note says which)."""
    if coupling not in COUPLINGS:
        raise ValueError(f"unknown TV coupling {coupling!r}; choose one of {', '.join(COUPLINGS)}")
    entries = tuned_table()["settings"][coupling]
    label = mask.label()
    if label in entries:
        return entries[label]["lam"], entries[label]["eps0"], None
    trajectory = isinstance(mask, TrajectorySpec)
    family = {k: e for k, e in entries.items() if ("spokes" in e) == trajectory}
    if not family:
        default = TVSettings()
        return default.lam, default.eps0, f"no TV weight was tuned for {label} or its family; using the default"
    same_kind = {k: e for k, e in family.items() if e["kind"] == mask.kind} or family
    nearest = min(same_kind, key=lambda k: _distance(same_kind[k], mask))
    entry = same_kind[nearest]
    return entry["lam"], entry["eps0"], f"no TV weight was tuned for {label}; using that of {nearest}"


def tuned_settings(mask: MaskSpec | TrajectorySpec, coupling: str = "joint", lam: float | None = None,
                   eps0: float | None = None, **changes) -> TVSettings:
    """TVSettings for ``mask`` and ``coupling`` with the tuned lam and eps0, unless given (a warning says when
    the mask was not tuned and a neighbour's weight is used); ``changes``: other TVSettings fields."""
    tuned_lam, tuned_eps0, note = (lam, eps0, None) if lam is not None and eps0 is not None else \
        tuned_tv(mask, coupling)
    if note is not None and lam is None:
        warnings.warn(note, stacklevel=2)
    settings = TVSettings(lam=tuned_lam if lam is None else lam, eps0=tuned_eps0 if eps0 is None else eps0,
                          coupling=coupling)
    return replace(settings, **changes)
