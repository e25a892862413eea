import numpy as np
import pytest

from lpam.physics.masks import (
    cartesian_mask,
    load_mask,
    make_mask,
    radial_mask,
    ring_profile,
    save_mask,
    variable_density_mask,
)

# the authors' published 20% radial mask, fraction sampled on the 1-px ring at radius r (SPEC.md section 5)
AUTHORS_RING_PROFILE = {10: 0.88, 15: 0.69, 20: 0.52, 30: 0.35, 40: 0.24, 60: 0.16, 80: 0.14}


@pytest.mark.parametrize("shape", [(160, 180), (128, 128), (256, 200)])
@pytest.mark.parametrize("rate", [0.1, 0.2, 0.3, 0.4])
def test_radial_rate_within_one_percent(shape, rate):
    mask = radial_mask(shape, rate, seed=3)
    assert mask.shape == shape and mask.dtype == bool
    assert abs(mask.mean() - rate) <= 0.01
    v, h = np.meshgrid(np.arange(shape[0]) - shape[0] // 2, np.arange(shape[1]) - shape[1] // 2, indexing="ij")
    assert mask[np.hypot(v, h) <= 8].all()  # fully sampled centre disc


def test_radial_matches_the_authors_ring_profile():
    profile = ring_profile(radial_mask((160, 180), 0.2), list(AUTHORS_RING_PROFILE))
    for radius, expected in AUTHORS_RING_PROFILE.items():
        assert abs(profile[radius] - expected) <= 0.1, (radius, profile[radius], expected)


def test_masks_are_seeded():
    for kind, options in [("radial", {"rate": 0.2}), ("cartesian-random", {"acceleration": 4}),
                          ("cartesian-equispaced", {"acceleration": 8}), ("variable-density", {"rate": 0.25})]:
        a = make_mask(kind, (64, 72), seed=1, **options)
        assert np.array_equal(a, make_mask(kind, (64, 72), seed=1, **options)), kind
        assert not np.array_equal(a, make_mask(kind, (64, 72), seed=2, **options)), kind


@pytest.mark.parametrize("kind", ["random", "equispaced"])
@pytest.mark.parametrize("acceleration, centre", [(4, 0.08), (8, 0.04)])
def test_cartesian_follows_fastmri_semantics(kind, acceleration, centre):
    width = 368
    mask = cartesian_mask((100, width), acceleration, kind=kind, seed=0)
    assert (mask == mask[0]).all()  # whole phase-encoding lines
    low = round(width * centre)
    start = (width - low + 1) // 2
    assert mask[0, start : start + low].all()
    assert abs(mask[0].mean() - 1 / acceleration) < 0.35 / acceleration
    if kind == "equispaced":
        outside = np.flatnonzero(mask[0])
        outside = outside[(outside < start) | (outside >= start + low)]
        gaps = np.diff(outside[outside < start])
        assert gaps.max() - gaps.min() <= 1


def test_variable_density_and_poisson_disc():
    dense = variable_density_mask((96, 100), 0.25, seed=0, kind="random")
    assert abs(dense.mean() - 0.25) <= 0.02
    v, h = np.meshgrid(np.arange(96) - 48, np.arange(100) - 50, indexing="ij")
    radius = np.hypot(v, h)
    assert dense[radius < 20].mean() > dense[radius > 40].mean()
    poisson = variable_density_mask((64, 64), 0.25, seed=0, kind="poisson")
    assert abs(poisson.mean() - 0.25) <= 0.01
    points = np.argwhere(poisson & (np.hypot(*np.meshgrid(np.arange(64) - 32, np.arange(64) - 32, indexing="ij")) > 0.04 * 64 + 1))
    distance = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(distance, np.inf)
    assert distance.min() >= 1.0  # distinct points; spacing grows outwards
    outer = np.hypot(points[:, 0] - 32, points[:, 1] - 32) > 25
    assert distance[outer][:, outer].min() > distance.min()


def test_save_and_load(tmp_path):
    mask = radial_mask((40, 50), 0.3)
    save_mask(mask, tmp_path / "m.npy")
    assert (tmp_path / "m.png").is_file()
    assert np.array_equal(load_mask(tmp_path / "m.npy", shape=(40, 50)), mask)
    np.savez(tmp_path / "m.npz", mask=mask.astype(np.uint8))
    assert np.array_equal(load_mask(tmp_path / "m.npz"), mask)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: make_mask("spiral", (8, 8), rate=0.2), "unknown mask kind"),
        (lambda: make_mask("radial", (8, 8)), "rate"),
        (lambda: make_mask("radial", (160, 180), rate=1.5), "rate"),
        (lambda: make_mask("radial", (20, 20), rate=0.05), "cannot reach"),
        (lambda: make_mask("cartesian-random", (8, 8)), "acceleration"),
        (lambda: make_mask("radial", (8,), rate=0.2), "shape"),
        (lambda: make_mask("cartesian-random", (32, 32), acceleration=4, center_fraction=0.5), "center_fraction"),
    ],
)
def test_mask_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_load_mask_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_mask(tmp_path / "missing.npy")
    np.save(tmp_path / "zeros.npy", np.zeros((8, 8)))
    with pytest.raises(ValueError, match="samples no k-space point"):
        load_mask(tmp_path / "zeros.npy")
    np.save(tmp_path / "three.npy", np.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="must be 2-D"):
        load_mask(tmp_path / "three.npy")
    np.save(tmp_path / "ok.npy", np.ones((8, 8)))
    with pytest.raises(ValueError, match="does not match"):
        load_mask(tmp_path / "ok.npy", shape=(8, 9))
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_mask(tmp_path / "bad.npy")
