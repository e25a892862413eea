"""TV weights tuned per mask: the table ``weights/tv_weights.json`` written by ``scripts/tune_tv.py`` (a sweep of
lam and eps0 on the validation slab for every mask of the benchmark), so that no TV baseline runs with a weight
tuned for another mask (docs/method.md section 7).

A mask the table does not hold takes the entry of the same kind nearest in sampling rate (1 / acceleration
for Cartesian masks), else the entry nearest in rate of any kind, and says so. A trajectory (``radial-golden-64``)
takes its entry, else the trajectory entry nearest in spokes (its own kind first).

Each entry holds LPAM's lam and eps0 and, where tuned (``scripts/tune_tv.py --solver primal-dual --update``), a
``primal_dual`` sub-entry with the lam of the TV model solved to convergence (the optimum weight differs).
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
from lpam.reconstruction import TVSettings, check_solver
from lpam.regularizers.tv import TV_COUPLINGS, check_coupling

TABLE = Path(__file__).parent / "weights" / "tv_weights.json"
COUPLINGS = TV_COUPLINGS  # the table holds one set of weights per TV coupling
PRIMAL_DUAL_KEY = "primal_dual"  # an entry's sub-entry {"lam", "val_psnr", "sweep_lam"} for the primal-dual solver


@lru_cache(maxsize=1)
def tuned_table() -> dict:
    """The shipped table: {"settings": {coupling: {mask label: {"lam", "eps0", ..., "primal_dual": {"lam", ...}}}},
    "sweep": {..., "primal_dual": {...}}}."""
    return json.loads(TABLE.read_text())


def _spec_of(entry: dict) -> MaskSpec:
    return MaskSpec(entry["kind"], entry.get("rate"), entry.get("acceleration"))


def _distance(entry: dict, request: MaskSpec | TrajectorySpec) -> float:
    """|log ratio| of the entry's and the request's sampling rates (masks) or spoke counts (trajectories)."""
    if isinstance(request, TrajectorySpec):
        return abs(math.log(entry["spokes"] / request.spokes))
    return abs(math.log(_spec_of(entry).nominal_rate() / request.nominal_rate()))


def _tuned_entry(mask: MaskSpec | TrajectorySpec, coupling: str) -> tuple[str | None, dict | None, str | None]:
    """(label, entry, note) of the table entry for ``mask``: its own, else the nearest of its family (the note
    says which), else (None, None, note)."""
    entries = tuned_table()["settings"][coupling]
    label = mask.label()
    if label in entries:
        return label, entries[label], None
    trajectory = isinstance(mask, TrajectorySpec)
    family = {k: e for k, e in entries.items() if ("spokes" in e) == trajectory}
    if not family:
        return None, None, f"no TV weight was tuned for {label} or its family; using the default"
    same_kind = {k: e for k, e in family.items() if e["kind"] == mask.kind} or family
    nearest = min(same_kind, key=lambda k: _distance(same_kind[k], mask))
    return nearest, same_kind[nearest], f"no TV weight was tuned for {label}; using that of {nearest}"


def tuned_tv(mask: MaskSpec | TrajectorySpec, coupling: str = "joint",
             solver: str = "lpam") -> tuple[float, float, str | None]:
    """(lam, eps0, note) for ``mask`` (or a trajectory) and ``solver``: the tuned entry of its label, else the
    nearest of its family (masks or trajectories; the note says which). For the primal-dual solver lam is the
    entry's ``primal_dual`` lam, or, where none was tuned, the entry's LPAM lam (the note says so); eps0 is
    LPAM's (primal-dual does not use it)."""
    check_coupling(coupling)
    check_solver(solver)
    found, entry, note = _tuned_entry(mask, coupling)
    if entry is None:
        default = TVSettings()
        return default.lam, default.eps0, note
    if solver == "lpam":
        return entry["lam"], entry["eps0"], note
    if PRIMAL_DUAL_KEY not in entry:
        fallback = f"no primal-dual TV weight was tuned for {found}; using its LPAM weight"
        return entry["lam"], entry["eps0"], fallback if note is None else f"{note}; {fallback}"
    return entry[PRIMAL_DUAL_KEY]["lam"], entry["eps0"], note


def tuned_settings(mask: MaskSpec | TrajectorySpec, coupling: str = "joint", lam: float | None = None,
                   eps0: float | None = None, solver: str = "lpam", **changes) -> TVSettings:
    """TVSettings for ``mask``, ``coupling`` and ``solver`` with the tuned lam and eps0, unless given (a warning
    says when the mask was not tuned and a neighbour's weight is used); ``changes``: other TVSettings fields."""
    tuned_lam, tuned_eps0, note = (lam, eps0, None) if lam is not None and eps0 is not None else \
        tuned_tv(mask, coupling, solver)
    if note is not None and lam is None:
        warnings.warn(note, stacklevel=2)
    settings = TVSettings(lam=tuned_lam if lam is None else lam, eps0=tuned_eps0 if eps0 is None else eps0,
                          coupling=coupling, solver=solver)
    return replace(settings, **changes)
