"""k-space sampling masks (docs/method.md sections 5 and 7).

Every mask is a boolean (H, W) array, True where k-space is sampled, with the k-space centre (DC) at
(H // 2, W // 2): the convention of the centred FFT (ifftshift -> fft2 -> fftshift). Every random choice
comes from ``np.random.default_rng(seed)``, so a mask is a function of its arguments.
"""
from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

MASK_KINDS = ("radial", "cartesian-random", "cartesian-equispaced", "variable-density", "poisson")
RATE_TOLERANCE = 0.01  # "rate within 1%": |achieved - requested| <= 0.01 (docs/method.md section 7)
PAPER_CENTER_RADIUS = 8.5  # px, the fully sampled disc of the paper's 160x180 radial mask
PAPER_MIN_SIZE = 160  # px, min(H, W) of the paper's mask: other shapes scale the disc by min(H, W) / 160
CENTER_FRACTION_ACCELERATION = 0.32  # default centre fraction x acceleration: fastMRI's 0.08 at 4x, 0.04 at 8x
DART_THROWING_DENSITY = 0.56  # dart throwing on the grid keeps ~0.56 / d^2 points per px^2: the first guess of d
POISSON_SEARCH_STEPS = 40  # cap on the x1.5 bracketing + bisection steps; ample to reach RATE_TOLERANCE / 2
VARIABLE_DENSITY_POWER = 4  # density (1 - r / r_max)^4 of the "random" variable-density mask
POISSON_DISTANCE_GROWTH = 3.0  # Poisson-disc minimum distance s (1 + 3 r / r_max): 4x wider at the corners
EQUISPACED_FRACTION = 0.8  # lines are equispaced when 80% of the gaps lie within 1 of the median gap
BINARY_TOLERANCE = 1e-3  # a stored mask value within this of 0 or 1 is that value (float rounding)


def binary_mask_error(values: np.ndarray | torch.Tensor) -> str | None:
    """None if ``values`` are a sampling mask (bool, or only 0 and 1 up to :data:`BINARY_TOLERANCE`), else
    what is wrong: a soft density or weights would otherwise silently become "nonzero = sampled"."""
    if isinstance(values, torch.Tensor) and values.dtype == torch.bool:
        return None
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.dtype == bool:
        return None
    if np.iscomplexobj(array):
        return f"a mask must be real 0 / 1 values, got complex dtype {array.dtype}"
    if array.dtype.kind not in "biuf":
        return f"a mask must hold 0 / 1 values, got dtype {array.dtype}"
    off = np.minimum(np.abs(array), np.abs(array - 1)) > BINARY_TOLERANCE
    if off.any():
        shown = ", ".join(f"{v:g}" for v in np.unique(array[off])[:3])
        return (f"a mask must hold only 0 and 1 (sampled or not), got {int(off.sum())} other value(s) such as "
                f"{shown}; threshold a sampling density yourself")
    return None


def checked_shape(shape: Iterable[int], what: str = "mask") -> tuple[int, int]:
    """``shape`` as two positive integers (H, W), or a ValueError naming ``what`` has that shape."""
    try:
        height, width = (operator.index(size) for size in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{what} shape must be two integer sizes (H, W), got {shape!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"{what} shape must be positive, got {(height, width)}")
    return height, width


def _check_acceleration(acceleration: float | None) -> float:
    if not isinstance(acceleration, numbers.Real) or not acceleration > 1:
        raise ValueError(f"acceleration must be > 1, got {acceleration}")
    return float(acceleration)


def _check_rate(rate: float | None) -> float:
    if not isinstance(rate, numbers.Real) or not 0 < rate <= 1:
        raise ValueError(f"sampling rate must lie in (0, 1], got {rate}")
    return float(rate)


def _distance(shape: tuple[int, int]) -> np.ndarray:
    """|k - c| for every grid point k, c = (H // 2, W // 2) the k-space centre."""
    rows = np.arange(shape[0]) - shape[0] // 2
    cols = np.arange(shape[1]) - shape[1] // 2
    return np.hypot(rows[:, None], cols[None, :])


def _center_disc(shape: tuple[int, int], radius: float | None) -> np.ndarray:
    """{k : |k - c| <= radius}; the default radius is the paper's 8.5 px scaled by min(H, W) / 160."""
    if radius is None:
        radius = PAPER_CENTER_RADIUS * min(shape) / PAPER_MIN_SIZE
    elif not radius >= 0:
        raise ValueError(f"center_radius must be >= 0 px, got {radius}")
    return _distance(shape) <= radius


def _spokes(shape: tuple[int, int], count: int, offset: float) -> np.ndarray:
    """Full lines c + t (sin a_j, cos a_j), a_j = offset + j pi / count (j < count), through the whole grid,
    rasterised by rounding points every 1/4 px along them."""
    height, width = shape
    half_length = math.hypot(height, width) / 2 + 1
    t = np.arange(-half_length, half_length, 0.25)
    angles = offset + np.arange(count) * np.pi / count
    rows = np.rint(height // 2 + np.outer(np.sin(angles), t)).astype(int).ravel()
    cols = np.rint(width // 2 + np.outer(np.cos(angles), t)).astype(int).ravel()
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    mask = np.zeros(shape, dtype=bool)
    mask[rows[inside], cols[inside]] = True
    return mask


def radial_mask(
    shape: tuple[int, int], rate: float, seed: int = 0, center_radius: float | None = None
) -> np.ndarray:
    """The paper's radial mask: a fully sampled centre disc plus ``n`` straight spokes through the centre.

    Spoke j has angle (u + j) pi / n, u ~ U(0, 1) seeded (a random global rotation); ``n`` is found by
    bisection (the rate grows with n) as the count whose rate is nearest ``rate``. The disc radius defaults
    to 8.5 px at 160x180 (scaled by min(H, W) / 160). About 27 spokes give 20% on 160x180.
    Raises ValueError when no count reaches ``rate`` within 0.01.
    """
    shape, rate = checked_shape(shape), _check_rate(rate)
    disc = _center_disc(shape, center_radius)
    rotation = np.random.default_rng(seed).uniform()
    masks: dict[int, np.ndarray] = {}

    def achieved(count: int) -> float:
        if count not in masks:
            masks[count] = disc | _spokes(shape, count, rotation * np.pi / count)
        return float(masks[count].mean())

    # with pi * diagonal spokes, neighbouring spokes are < 1/2 px apart everywhere: the grid is covered
    low, high = 0, math.ceil(math.pi * math.hypot(*shape))
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if achieved(middle) < rate else (low, middle)
    count = min((max(low, 1), high), key=lambda n: abs(achieved(n) - rate))
    if abs(achieved(count) - rate) > RATE_TOLERANCE:
        raise ValueError(
            f"a radial mask of shape {shape} cannot reach rate {rate} within {RATE_TOLERANCE}: the nearest has "
            f"rate {achieved(count):.4f} ({count} spokes; the centre disc alone covers {disc.mean():.4f})"
        )
    return masks[count]


def ring_profile(mask: np.ndarray, radii: Iterable[int]) -> dict[int, float]:
    """For each r, the sampled fraction of the in-grid points k with round(|k - c|) = r."""
    rings = np.rint(_distance(mask.shape))
    profile = {}
    for radius in radii:
        ring = rings == radius
        if not ring.any():
            raise ValueError(f"no grid point of a {mask.shape} mask lies at radius {radius}")
        profile[radius] = float(mask[ring].mean())
    return profile


def cartesian_mask(
    shape: tuple[int, int], acceleration: float, center_fraction: float | None = None,
    kind: str = "random", seed: int = 0,
) -> np.ndarray:
    """Whole columns (lines along H) with fastMRI's semantics, W columns, ``low`` = round(W center_fraction):

    the ``low`` centre columns from (W - low + 1) // 2 on are sampled; ``random`` adds each other column with
    probability (W / acc - low) / (W - low); ``equispaced`` adds columns round(o + j a) at the adjusted
    acceleration a = acc (low - W) / (low acc - W), seeded offset o in [0, round(a)), so that about W / acc
    columns are sampled. center_fraction defaults to 0.32 / acc (0.08 at 4x, 0.04 at 8x).
    """
    height, width = checked_shape(shape)
    if kind not in ("random", "equispaced"):
        raise ValueError(f"unknown cartesian kind {kind!r}; choose 'random' or 'equispaced'")
    acceleration = _check_acceleration(acceleration)
    if center_fraction is None:
        center_fraction = CENTER_FRACTION_ACCELERATION / acceleration
    if not isinstance(center_fraction, numbers.Real) or not 0 < center_fraction < 1:
        raise ValueError(f"center_fraction must lie in (0, 1), got {center_fraction}")
    low = max(1, round(width * center_fraction))  # at least the DC column
    if low >= width / acceleration:
        raise ValueError(
            f"center_fraction {center_fraction} gives {low} centre columns; with {width} columns at "
            f"acceleration {acceleration} they must be fewer than {width / acceleration:.2f}"
        )
    rng = np.random.default_rng(seed)
    if kind == "random":
        columns = rng.uniform(size=width) < (width / acceleration - low) / (width - low)
    else:  # equispaced
        adjusted = acceleration * (low - width) / (low * acceleration - width)
        offset = rng.integers(0, max(1, round(adjusted)))
        columns = np.zeros(width, dtype=bool)
        columns[np.rint(np.arange(offset, width - 1, adjusted)).astype(int)] = True
    start = (width - low + 1) // 2
    columns[start : start + low] = True
    return np.broadcast_to(columns, (height, width)).copy()


def variable_density_mask(
    shape: tuple[int, int], rate: float, seed: int = 0, kind: str = "random"
) -> np.ndarray:
    """2-D variable-density masks with a fully sampled centre disc (radius 8.5 px at 160x180, scaled).

    ``random``: point k is sampled when u_k < s p(k), u_k ~ U(0, 1) seeded, p = (1 - |k - c| / r_max)^4,
    i.e. Bernoulli(min(1, s p)); the scale s is the quantile that gives round(rate H W) points.
    ``poisson``: a variable-density Poisson disc: dart throwing in a seeded random order keeps a point when
    no kept point lies closer than d = s (1 + 3 |k - c| / r_max); s is found by bisection.
    Both reach ``rate`` within 0.01 or raise ValueError.
    """
    if kind not in ("random", "poisson"):
        raise ValueError(f"unknown variable-density kind {kind!r}; choose 'random' or 'poisson'")
    shape, rate = checked_shape(shape), _check_rate(rate)
    centre = _center_disc(shape, None)
    if centre.mean() > rate + RATE_TOLERANCE:
        raise ValueError(f"rate {rate} is below the fully sampled centre ({centre.mean():.4f}) of shape {shape}")
    distance = _distance(shape)
    relative = distance / max(distance.max(), 1)
    rng = np.random.default_rng(seed)
    if kind == "random":
        return _variable_density_random(centre, (1 - relative) ** VARIABLE_DENSITY_POWER, rate, rng)
    return _variable_density_poisson(centre, 1 + POISSON_DISTANCE_GROWTH * relative, rate, rng)


def _variable_density_random(
    centre: np.ndarray, density: np.ndarray, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """The centre plus the points of smallest u_k / p(k): thresholding u_k < s p(k) at the fitting s."""
    with np.errstate(divide="ignore"):
        key = np.where(centre, -np.inf, rng.uniform(size=centre.shape) / density).ravel()
    count = max(round(rate * centre.size), int(centre.sum()))
    mask = np.zeros(centre.size, dtype=bool)
    mask[np.argpartition(key, count - 1)[:count]] = True
    return mask.reshape(centre.shape)


def _variable_density_poisson(
    centre: np.ndarray, profile: np.ndarray, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Poisson disc with minimum distance d = s * profile, s fitted to ``rate`` (the rate falls as s grows).

    First guess: dart throwing on the grid keeps about 0.56 / d^2 points per px^2, so for n points outside
    the centre s^2 ~ 0.56 sum(1 / profile^2) / n; then steps of 1.5x until ``rate`` is bracketed, then
    bisection, until the rate is within 0.005.
    """
    wanted = rate * centre.size - centre.sum()
    if wanted <= 0:
        return centre.copy()
    order = rng.permutation(centre.size)
    scale = math.sqrt(DART_THROWING_DENSITY * (profile[~centre] ** -2.0).sum() / wanted)
    low = high = None
    best = mask = _poisson_disc(scale * profile, centre, order)
    for _ in range(POISSON_SEARCH_STEPS):
        if abs(best.mean() - rate) <= RATE_TOLERANCE / 2:
            break
        if mask.mean() > rate:
            low = scale
        else:
            high = scale
        if low is not None and high is not None:
            scale = 0.5 * (low + high)
        else:
            scale = scale * 1.5 if high is None else scale / 1.5
        mask = _poisson_disc(scale * profile, centre, order)
        best = min(best, mask, key=lambda m: abs(m.mean() - rate))
    if abs(best.mean() - rate) > RATE_TOLERANCE:
        raise ValueError(
            f"a Poisson-disc mask of shape {centre.shape} cannot reach rate {rate} (nearest {best.mean():.4f})"
        )
    return best


def _poisson_disc(min_distance: np.ndarray, centre: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Dart throwing: the centre is kept, then each grid point in ``order`` (flat indices) is kept unless a kept
    point q lies at |k - q| < max(d(k), d(q)).

    Computed exactly as the sequential loop would, but vectorised: the conflict pairs form a graph and the
    result is its greedy maximal independent set in ``order``; each round keeps every undecided point that
    precedes all its undecided neighbours and discards the neighbours of the points kept.
    """
    height, width = centre.shape
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    firsts, seconds = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    reach = math.ceil(min_distance.max())
    for dy in range(min(reach, height - 1) + 1):
        for dx in range(-min(reach, width - 1) if dy else 1, min(reach, width - 1) + 1):
            length = math.hypot(dy, dx)
            if length >= min_distance.max():
                continue
            left, right = max(0, -dx), width - max(0, dx)  # columns k whose partner k + (dy, dx) is in the grid
            first = min_distance[: height - dy, left:right]
            second = min_distance[dy:, left + dx : right + dx]
            rows, cols = np.nonzero(length < np.maximum(first, second))
            firsts.append(rows * width + cols + left)
            seconds.append((rows + dy) * width + cols + left + dx)
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    first_is_later = rank[first] > rank[second]
    later, earlier = np.where(first_is_later, first, second), np.where(first_is_later, second, first)

    kept = centre.ravel().copy()
    undecided = ~kept
    undecided[later[kept[earlier]]] = False
    undecided[earlier[kept[later]]] = False
    while True:
        alive = undecided[later] & undecided[earlier]
        later, earlier = later[alive], earlier[alive]
        if not later.size:
            return (kept | undecided).reshape(centre.shape)
        blocked = np.zeros_like(kept)
        blocked[later] = True  # an undecided neighbour comes first
        winners = undecided & ~blocked
        kept |= winners
        undecided &= ~winners
        undecided[later[winners[earlier]]] = False


def make_mask(
    kind: str, shape: tuple[int, int], rate: float | None = None, acceleration: float | None = None,
    center_fraction: float | None = None, seed: int = 0,
) -> np.ndarray:
    """A mask of one of :data:`MASK_KINDS`: ``rate`` for radial / variable-density / poisson, ``acceleration``
    (and optional ``center_fraction``) for the cartesian kinds; parameters a kind does not use are ignored."""
    if kind == "radial":
        return radial_mask(shape, rate, seed)
    if kind in ("cartesian-random", "cartesian-equispaced"):
        return cartesian_mask(shape, acceleration, center_fraction, kind.removeprefix("cartesian-"), seed)
    if kind == "variable-density":
        return variable_density_mask(shape, rate, seed, "random")
    if kind == "poisson":
        return variable_density_mask(shape, rate, seed, "poisson")
    raise ValueError(f"unknown mask kind {kind!r}; choose one of {', '.join(MASK_KINDS)}")


@dataclass
class MaskSpec:
    """A mask request (kind, rate or acceleration, centre, seed), as the CLI and configs take it."""

    kind: str = "radial"
    rate: float | None = 0.2
    acceleration: float | None = None
    center_fraction: float | None = None
    seed: int = 0

    def build(self, shape: tuple[int, int]) -> torch.Tensor:
        mask = make_mask(self.kind, shape, rate=self.rate, acceleration=self.acceleration,
                         center_fraction=self.center_fraction, seed=self.seed)
        return torch.from_numpy(np.ascontiguousarray(mask))

    def describe(self) -> dict:
        described = {"kind": self.kind, "seed": self.seed}
        for key in ("rate", "acceleration", "center_fraction"):
            if getattr(self, key) is not None:
                described[key] = getattr(self, key)
        return described

    def nominal_rate(self) -> float:
        """The sampling rate the request aims at: its rate, or 1 / acceleration (checked as the mask makers do)."""
        if self.acceleration is not None:
            return 1.0 / _check_acceleration(self.acceleration)
        return _check_rate(self.rate)

    def label(self) -> str:
        """Short name of the setting, e.g. ``radial-0.20`` or ``cartesian-random-4x`` (benchmark keys)."""
        if self.acceleration is not None:
            return f"{self.kind}-{self.acceleration:g}x"
        return f"{self.kind}-{self.rate:.2f}"


def infer_mask_spec(mask: np.ndarray | torch.Tensor) -> MaskSpec:
    """What a given (H, W) mask is, for choosing a model: Cartesian lines (every column sampled whole or not
    at all; equispaced when the sampled columns outside the centre are evenly spaced) with their acceleration
    W / (sampled columns), else a 2-D mask (reported as radial) with its sampling rate."""
    sampled = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask) != 0
    columns = sampled.all(axis=0)
    if sampled.ndim == 2 and (columns | ~sampled.any(axis=0)).all() and columns.any():
        gaps = np.diff(np.flatnonzero(columns))
        outer = gaps[gaps > 1]  # gaps between sampled lines outside the fully sampled centre
        regular = outer.size and np.mean(np.abs(outer - np.median(outer)) <= 1) >= EQUISPACED_FRACTION
        kind = "cartesian-equispaced" if regular else "cartesian-random"
        return MaskSpec(kind, None, round(sampled.shape[1] / int(columns.sum()), 1))
    return MaskSpec("radial", round(float(sampled.mean()), 3))
