import math
import time

import numpy as np
import pytest
import scipy.io

from lpam.data.mask_files import load_mask, save_mask
from lpam.physics.masks import (
    MASK_KINDS,
    _poisson_disc,
    cartesian_mask,
    make_mask,
    radial_mask,
    ring_profile,
    variable_density_mask,
)

# the authors' published 20% radial mask: sampled fraction of the 1-px ring at radius r (docs/method.md section 5)
AUTHORS_RING_PROFILE = {10: 0.88, 15: 0.69, 20: 0.52, 30: 0.35, 40: 0.24, 60: 0.16, 80: 0.14}
OPTIONS = {
    "radial": {"rate": 0.2},
    "cartesian-random": {"acceleration": 4},
    "cartesian-equispaced": {"acceleration": 8},
    "variable-density": {"rate": 0.25},
    "poisson": {"rate": 0.25},
}


def distance(shape):
    rows, cols = np.arange(shape[0]) - shape[0] // 2, np.arange(shape[1]) - shape[1] // 2
    return np.hypot(rows[:, None], cols[None, :])


def pairwise(points):
    return np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))


@pytest.mark.parametrize("shape", [(160, 180), (128, 128), (256, 200)])
@pytest.mark.parametrize("rate", [0.1, 0.2, 0.3, 0.4])
def test_radial_rate_within_one_percent_and_centre_disc_sampled(shape, rate):
    mask = radial_mask(shape, rate, seed=3)
    assert mask.shape == shape and mask.dtype == bool
    assert abs(mask.mean() - rate) <= 0.01
    assert mask[distance(shape) <= 8.5 * min(shape) / 160].all()


def test_radial_centre_radius_option():
    mask = radial_mask((160, 180), 0.3, center_radius=15)
    assert mask[distance((160, 180)) <= 15].all()
    assert abs(mask.mean() - 0.3) <= 0.01


def test_radial_matches_the_authors_ring_profile():
    expected = np.array(list(AUTHORS_RING_PROFILE.values()))
    profile = ring_profile(radial_mask((160, 180), 0.2), AUTHORS_RING_PROFILE)
    assert np.abs(np.array(list(profile.values())) - expected).max() <= 0.1, profile
    for seed in range(5):
        profile = ring_profile(radial_mask((160, 180), 0.2, seed=seed), AUTHORS_RING_PROFILE)
        assert np.abs(np.array(list(profile.values())) - expected).mean() <= 0.05, (seed, profile)


def test_ring_profile_counts_the_rounded_ring():
    mask = distance((21, 21)) >= 4.5  # rings 5 and beyond
    assert ring_profile(mask, [4, 5, 10]) == {4: 0.0, 5: 1.0, 10: 1.0}


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_masks_are_seeded_and_fit_any_shape(kind):
    for shape in [(64, 72), (63, 81)]:
        a = make_mask(kind, shape, seed=1, **OPTIONS[kind])
        assert a.shape == shape and a.dtype == bool
        assert a[shape[0] // 2, shape[1] // 2]  # DC
        assert np.array_equal(a, make_mask(kind, shape, seed=1, **OPTIONS[kind]))
        assert not np.array_equal(a, make_mask(kind, shape, seed=2, **OPTIONS[kind]))


@pytest.mark.parametrize("kind", ["random", "equispaced"])
@pytest.mark.parametrize("acceleration, centre", [(4, 0.08), (8, 0.04)])
def test_cartesian_follows_fastmri_semantics(kind, acceleration, centre):
    width = 368
    mask = cartesian_mask((100, width), acceleration, kind=kind, seed=0)
    assert (mask == mask[0]).all()  # whole columns, constant along H
    low = round(width * centre)
    start = (width - low + 1) // 2
    assert mask[0, start : start + low].all() and start <= width // 2 < start + low
    assert abs(mask[0].mean() - 1 / acceleration) < 0.3 / acceleration
    if kind == "equispaced":
        outside = np.flatnonzero(mask[0])
        gaps = np.diff(outside[outside < start])
        assert gaps.max() - gaps.min() <= 1  # equally spaced up to rounding
        assert abs(mask[0].sum() - width / acceleration) <= 2


def test_cartesian_random_fraction_is_one_over_acceleration_on_average():
    fractions = [cartesian_mask((8, 320), 4, kind="random", seed=seed)[0].mean() for seed in range(200)]
    assert abs(np.mean(fractions) - 0.25) < 0.005


def test_cartesian_centre_fraction_option():
    mask = cartesian_mask((16, 200), 4, center_fraction=0.2, kind="random", seed=0)
    assert mask[0, 80:120].all()


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.3, 0.4])
def test_variable_density_random(rate):
    mask = variable_density_mask((160, 180), rate, seed=0, kind="random")
    assert abs(mask.mean() - rate) <= 1 / mask.size
    radius = distance((160, 180))
    assert mask[radius <= 8.5].all()
    inner, middle, outer = (mask[(radius > r) & (radius < r + 20)].mean() for r in (10, 40, 80))
    assert inner > middle > outer


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.3, 0.4])
def test_poisson_rate_and_speed(rate):
    start = time.perf_counter()
    mask = variable_density_mask((160, 180), rate, seed=0, kind="poisson")
    assert time.perf_counter() - start < 2
    assert abs(mask.mean() - rate) <= 0.01
    radius = distance((160, 180))
    assert mask[radius <= 8.5].all()
    assert mask[(radius > 10) & (radius < 30)].mean() > mask[radius > 60].mean()


def sequential_dart_throwing(min_distance, centre, order):
    kept = [tuple(point) for point in np.argwhere(centre)]
    mask = centre.copy()
    for index in order:
        row, col = divmod(int(index), centre.shape[1])
        if not centre[row, col] and all(
            math.hypot(row - r, col - c) >= max(min_distance[row, col], min_distance[r, c]) for r, c in kept
        ):
            kept.append((row, col))
            mask[row, col] = True
    return mask


@pytest.mark.parametrize("scale", [0.8, 1.5, 2.5])
def test_poisson_disc_is_sequential_dart_throwing(scale):
    shape = (23, 31)
    radius = distance(shape)
    min_distance, centre = scale * (1 + 3 * radius / radius.max()), radius <= 2
    order = np.random.default_rng(7).permutation(centre.size)
    mask = _poisson_disc(min_distance, centre, order)
    assert np.array_equal(mask, sequential_dart_throwing(min_distance, centre, order))


def test_poisson_disc_keeps_the_local_minimum_distance():
    shape = (64, 70)
    radius = distance(shape)
    min_distance, centre = 1.3 * (1 + 3 * radius / radius.max()), radius <= 3
    mask = _poisson_disc(min_distance, centre, np.random.default_rng(0).permutation(centre.size))
    points = np.argwhere(mask & ~centre)
    local = min_distance[tuple(points.T)]
    gaps = pairwise(points)
    np.fill_diagonal(gaps, np.inf)
    assert (gaps >= np.maximum(local[:, None], local[None, :])).all()
    # maximal: every point left out lies too close to a kept one
    kept = np.argwhere(mask)
    for point in np.argwhere(~mask):
        near = np.hypot(*(kept - point).T)
        assert (near < np.maximum(min_distance[tuple(point)], min_distance[tuple(kept.T)])).any()


def test_save_and_load_roundtrip(tmp_path):
    mask = radial_mask((40, 50), 0.3)
    save_mask(mask, tmp_path / "m.npy", title="radial, rate 0.3")
    assert (tmp_path / "m.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy", "m.png"]  # no temporary file left
    assert np.array_equal(load_mask(tmp_path / "m.npy", shape=(40, 50)), mask)
    np.savez(tmp_path / "keyed.npz", other=np.ones((3, 3)), mask=mask.astype(np.uint8))
    np.savez(tmp_path / "single.npz", mask.astype(np.float32))
    scipy.io.savemat(tmp_path / "keyed.mat", {"other": np.ones((3, 3)), "mask": mask.astype(np.uint8)})
    scipy.io.savemat(tmp_path / "single.mat", {"sampling": mask.astype(float)})
    for name in ["keyed.npz", "single.npz", "keyed.mat", "single.mat"]:
        loaded = load_mask(tmp_path / name)
        assert loaded.dtype == bool and np.array_equal(loaded, mask), name


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: make_mask("spiral", (8, 8), rate=0.2), "unknown mask kind 'spiral'; choose one of radial, cartesian"),
        (lambda: make_mask("radial", (8, 8)), r"rate must lie in \(0, 1\], got None"),
        (lambda: make_mask("poisson", (8, 8), rate=0), "rate must lie in"),
        (lambda: make_mask("variable-density", (160, 180), rate=1.5), "rate must lie in"),
        (lambda: make_mask("radial", (160, 180), rate=float("nan")), "rate must lie in"),
        (lambda: make_mask("radial", (20, 20), rate=0.01), "cannot reach rate 0.01"),
        (lambda: radial_mask((160, 180), 0.2, center_radius=-1), "center_radius must be >= 0"),
        (lambda: radial_mask((160, 180), 0.1, center_radius=40), "cannot reach"),
        (lambda: make_mask("cartesian-random", (8, 8)), "acceleration must be > 1, got None"),
        (lambda: make_mask("cartesian-equispaced", (8, 8), acceleration=1), "acceleration must be > 1"),
        (lambda: make_mask("cartesian-random", (32, 32), acceleration=4, center_fraction=0.5), "center_fraction"),
        (lambda: make_mask("cartesian-random", (32, 32), acceleration=4, center_fraction=-0.1), r"\(0, 1\), got -0.1"),
        (lambda: make_mask("cartesian-random", (32, 32), acceleration=4, center_fraction=math.nan), "center_fraction"),
        (lambda: make_mask("cartesian-random", (32, 32), acceleration="4"), "acceleration must be > 1"),
        (lambda: make_mask("radial", (32, 32), rate="0.2"), "rate must lie in"),
        (lambda: cartesian_mask((32, 32), 4, kind="spiral"), "unknown cartesian kind"),
        (lambda: variable_density_mask((32, 32), 0.2, kind="spiral"), "unknown variable-density kind"),
        (lambda: variable_density_mask((3, 3), 0.05), "below the fully sampled centre"),
        (lambda: make_mask("radial", (8,), rate=0.2), "shape must be two integer sizes"),
        (lambda: make_mask("radial", (8, 8, 8), rate=0.2), "shape must be two integer sizes"),
        (lambda: make_mask("radial", (8.5, 8), rate=0.2), "shape must be two integer sizes"),
        (lambda: make_mask("poisson", (0, 8), rate=0.2), "shape must be positive"),
        (lambda: ring_profile(np.ones((8, 8), bool), [20]), "no grid point"),
    ],
)
def test_mask_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_save_mask_errors(tmp_path):
    with pytest.raises(ValueError, match="must be 2-D"):
        save_mask(np.ones((2, 4, 4), bool), tmp_path / "m.npy")
    with pytest.raises(ValueError, match="saved as .npy"):
        save_mask(np.ones((4, 4), bool), tmp_path / "m.png")


def test_load_mask_errors(tmp_path):
    cases = {
        "zeros.npy": (np.zeros((8, 8)), "samples no k-space point"),
        "three.npy": (np.ones((2, 8, 8)), "must be 2-D"),
        "ok.npy": (np.ones((8, 8)), "does not match the data shape"),
        "nan.npy": (np.full((8, 8), np.nan), "NaN"),
    }
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array)
        with pytest.raises(ValueError, match=message) as error:
            load_mask(tmp_path / name, shape=(8, 9) if name == "ok.npy" else None)
        assert name in str(error.value)
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    (tmp_path / "bad.mat").write_bytes(b"garbage")
    for name in ["bad.npy", "bad.mat"]:
        with pytest.raises(ValueError, match=f"{name}: cannot be read"):
            load_mask(tmp_path / name)
    with pytest.raises(ValueError, match="mask file not found: .*missing.npy"):
        load_mask(tmp_path / "missing.npy")
