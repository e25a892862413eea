"""k-space sampling masks (SPEC.md sections 5 and 7): boolean (H, W) arrays, k-space centre at
(H // 2, W // 2) (the centred FFT convention), seeded and reproducible, any shape."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lpam.io import atomic_path, save_npy

MASK_KINDS = ("radial", "cartesian-random", "cartesian-equispaced", "variable-density", "poisson")
RATE_TOLERANCE = 0.01


def _check_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 2:
        raise ValueError(f"mask shape must be two sizes >= 2 (H, W), got {shape}")
    return shape  # type: ignore[return-value]


def _check_rate(rate: float | None) -> float:
    if rate is None or not 0 < rate <= 1:
        raise ValueError(f"sampling rate must lie in (0, 1], got {rate}")
    return float(rate)


def _radii(shape: tuple[int, int]) -> np.ndarray:
    """Distance of every grid point to the k-space centre."""
    v, h = np.meshgrid(np.arange(shape[0]) - shape[0] // 2, np.arange(shape[1]) - shape[1] // 2, indexing="ij")
    return np.hypot(v, h)


def _spokes(shape: tuple[int, int], count: int, offset: float) -> np.ndarray:
    """``count`` straight lines through the centre at angles offset + k pi / count, rasterised every 1/4 px."""
    height, width = shape
    half_length = np.hypot(height, width) / 2 + 1
    t = np.arange(-half_length, half_length, 0.25)
    angles = offset + np.arange(count) * np.pi / count
    rows = np.rint(height // 2 + np.outer(np.sin(angles), t)).astype(int).ravel()
    cols = np.rint(width // 2 + np.outer(np.cos(angles), t)).astype(int).ravel()
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    mask = np.zeros(shape, dtype=bool)
    mask[rows[inside], cols[inside]] = True
    return mask


def radial_mask(shape: tuple[int, int], rate: float, seed: int = 0, center_radius: float = 8.5) -> np.ndarray:
    """Fully sampled centre disc (radius ``center_radius`` px) plus straight spokes through the centre.

    The number of spokes is the one whose rate is nearest the request; the spokes are equally spaced
    over 180 degrees with a seeded random rotation. Raises when no count is within 0.01 of the request.
    """
    shape, rate = _check_shape(shape), _check_rate(rate)
    disc = _radii(shape) <= center_radius
    offset_fraction = np.random.default_rng(seed).uniform()
    best, previous = None, None
    for count in range(1, 4 * max(shape)):
        mask = disc | _spokes(shape, count, offset_fraction * np.pi / count)
        if best is None or abs(mask.mean() - rate) < abs(best.mean() - rate):
            best = mask
        if mask.mean() >= rate or (previous is not None and mask.mean() == previous):
            break
        previous = mask.mean()
    if abs(best.mean() - rate) > RATE_TOLERANCE:
        raise ValueError(f"a radial mask of shape {shape} cannot reach rate {rate} within {RATE_TOLERANCE} "
                         f"(nearest {best.mean():.3f}; the centre disc alone covers {disc.mean():.3f})")
    return best


def ring_profile(mask: np.ndarray, radii: list[int]) -> dict[int, float]:
    """Fraction of sampled in-grid points whose distance to the centre rounds to r, for each r."""
    distance = np.rint(_radii(mask.shape))
    return {r: float(mask[distance == r].mean()) for r in radii}


def cartesian_mask(
    shape: tuple[int, int], acceleration: float, center_fraction: float | None = None,
    kind: str = "random", seed: int = 0,
) -> np.ndarray:
    """Phase-encoding lines (columns, constant along H) as fastMRI defines them: round(W * center_fraction)
    fully sampled centre columns, then random columns with probability (W / acc - low) / (W - low), or
    equispaced columns at the adjusted acceleration acc (low - W) / (low acc - W) from a seeded offset."""
    height, width = _check_shape(shape)
    if acceleration is None or not acceleration > 1:
        raise ValueError(f"acceleration must be > 1, got {acceleration}")
    if center_fraction is None:
        center_fraction = {4: 0.08, 8: 0.04}.get(acceleration, 0.32 / acceleration)
    if not 0 < center_fraction < 1 / acceleration:
        raise ValueError(f"center_fraction must lie in (0, 1/acceleration), got {center_fraction}")
    rng = np.random.default_rng(seed)
    low = max(1, round(width * center_fraction))
    columns = np.zeros(width, dtype=bool)
    if kind == "random":
        columns = rng.uniform(size=width) < (width / acceleration - low) / (width - low)
    elif kind == "equispaced":
        adjusted = acceleration * (low - width) / (low * acceleration - width)
        offset = rng.integers(0, max(1, round(adjusted)))
        columns[np.rint(np.arange(offset, width - 1, adjusted)).astype(int)] = True
    else:
        raise ValueError(f"unknown cartesian kind {kind!r}; choose random or equispaced")
    start = (width - low + 1) // 2
    columns[start : start + low] = True
    return np.broadcast_to(columns, (height, width)).copy()


def _bisect(achieved, rate: float, low: float, high: float, steps: int = 30) -> float:
    """Parameter s in [low, high] with achieved(s) ~ rate, achieved increasing in s."""
    for _ in range(steps):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if achieved(middle) < rate else (low, middle)
    return 0.5 * (low + high)


def variable_density_mask(shape: tuple[int, int], rate: float, seed: int = 0, kind: str = "random") -> np.ndarray:
    """2-D variable density: ``random`` draws each point with probability min(1, s (1 - r / r_max)^4)
    (s set by bisection so the expected rate is ``rate``); ``poisson`` is a Poisson disc whose minimum
    distance grows linearly with r (1x at the centre, 4x at the edge), scaled by bisection to the rate.
    Both keep a fully sampled centre disc of radius 4% of the smaller size."""
    shape, rate = _check_shape(shape), _check_rate(rate)
    radii = _radii(shape)
    relative = radii / radii.max()
    centre = radii <= 0.04 * min(shape)
    if centre.mean() > rate:
        raise ValueError(f"rate {rate} is below the fully sampled centre ({centre.mean():.3f}) for shape {shape}")
    rng = np.random.default_rng(seed)
    if kind == "random":
        density = (1 - relative) ** 4
        scale = _bisect(lambda s: np.minimum(1, s * density).mean(), rate, 0.0, 1e4)
        return centre | (rng.uniform(size=shape) < np.minimum(1, scale * density))
    if kind == "poisson":
        order = rng.permutation(radii.size)
        spacing = 1 + 3 * relative.ravel()

        def draw(scale: float) -> np.ndarray:
            return _poisson_disc(shape, order, scale * spacing, centre)

        scale = _bisect(lambda s: -draw(s).mean(), -rate, 0.3, 20.0, steps=14)
        mask = draw(scale)
        if abs(mask.mean() - rate) > RATE_TOLERANCE:
            raise ValueError(f"a Poisson-disc mask of shape {shape} cannot reach rate {rate} (got {mask.mean():.3f})")
        return mask
    raise ValueError(f"unknown variable-density kind {kind!r}; choose random or poisson")


def _poisson_disc(shape: tuple[int, int], order: np.ndarray, min_distance: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Dart throwing over the grid in ``order``: a point is kept when no kept point lies closer than its
    own minimum distance (outside the fully sampled centre)."""
    height, width = shape
    kept = np.zeros(shape, dtype=bool)
    for index in order:
        row, col = divmod(int(index), width)
        if centre[row, col]:
            continue
        reach = int(np.ceil(min_distance[index]))
        r0, r1, c0, c1 = max(0, row - reach), min(height, row + reach + 1), max(0, col - reach), min(width, col + reach + 1)
        window = kept[r0:r1, c0:c1]
        if window.any():
            rows, cols = np.nonzero(window)
            if ((rows + r0 - row) ** 2 + (cols + c0 - col) ** 2).min() < min_distance[index] ** 2:
                continue
        kept[row, col] = True
    return kept | centre


def make_mask(
    kind: str, shape: tuple[int, int], rate: float | None = None, acceleration: float | None = None,
    center_fraction: float | None = None, seed: int = 0,
) -> np.ndarray:
    """Any mask of :data:`MASK_KINDS` from its parameters (rate, or acceleration for Cartesian kinds)."""
    if kind == "radial":
        return radial_mask(shape, rate, seed)
    if kind in ("cartesian-random", "cartesian-equispaced"):
        return cartesian_mask(shape, acceleration, center_fraction, kind.split("-")[1], seed)
    if kind in ("variable-density", "poisson"):
        return variable_density_mask(shape, rate, seed, "random" if kind == "variable-density" else "poisson")
    raise ValueError(f"unknown mask kind {kind!r}; choose one of {', '.join(MASK_KINDS)}")


def save_mask(mask: np.ndarray, path: str | Path, title: str = "") -> None:
    """Write the mask as .npy and a PNG picture beside it (same stem), both atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    save_npy(mask.astype(bool), path)
    figure, axis = plt.subplots(figsize=(4, 4 * mask.shape[0] / mask.shape[1]))
    axis.imshow(mask, cmap="gray", interpolation="nearest")
    axis.set_title(title or f"sampling rate {mask.mean():.3f}", fontsize=9)
    axis.axis("off")
    with atomic_path(path.with_suffix(".png")) as tmp:
        figure.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(figure)


def load_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask from .npy / .npz / .mat (key 'mask' preferred); nonzero entries are sampled."""
    from lpam.data.files import read_array

    path = Path(path)
    array = read_array(path, preferred=("mask",))
    if array.ndim != 2:
        raise ValueError(f"{path}: a mask must be 2-D, got shape {array.shape}")
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(f"{path}: mask shape {array.shape} does not match the data {tuple(shape)}")
    mask = array != 0
    if not mask.any():
        raise ValueError(f"{path}: the mask samples no k-space point")
    return mask
