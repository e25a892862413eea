"""What is chosen for a request: the shipped model for a mask and contrasts, the tuned TV weight for a mask,
what a given mask is, and the training masks of a config with a mask mix."""
import copy

import pytest
import torch

from lpam import tv_tuning
from lpam.methods import BENCHMARK_MASKS, BENCHMARK_SAMPLINGS
from lpam.models.shipped import SHIPPED, WEIGHTS_DIR, default_model, resolve_checkpoint
from lpam.physics.masks import MaskSpec, infer_mask_spec
from lpam.training.config import TrainConfig
from lpam.training.samples import mask_for, validation_masks
from lpam.tv_tuning import COUPLINGS, tuned_settings, tuned_table, tuned_tv


def test_every_shipped_model_exists():
    for model in SHIPPED:
        assert (WEIGHTS_DIR / model.weights).is_file(), model.weights


def test_default_model_for_its_training_mask_needs_no_warning():
    path, described, warning = default_model(MaskSpec("radial", 0.2))
    assert path.name == "lpam_net_joint_radial20.pt" and warning is None and "radial" in described
    path, _, warning = default_model(MaskSpec("radial", 0.2), ("T1", "T2", "PD"))
    assert path.name == "lpam_net_joint3_radial20.pt" and warning is None


@pytest.mark.parametrize("mask, coils, expected", [
    (MaskSpec("radial", 0.3), None, "no shipped model was trained for radial-0.30"),
    (MaskSpec("poisson", 0.2), None, "no shipped model was trained for poisson-0.20"),
    (MaskSpec("radial", 0.2), 8, "8-coil"),
])
def test_a_request_no_model_was_trained_for_runs_the_nearest_with_a_warning(mask, coils, expected):
    path, _, warning = default_model(mask, coils=coils)
    assert path.is_file() and expected in warning and "using the nearest" in warning
    with pytest.warns(UserWarning, match=expected):
        assert resolve_checkpoint(None, mask, coils=coils)[0] == path
    assert resolve_checkpoint("mine.pt", mask)[0].name == "mine.pt"  # a given checkpoint is used as it is


def test_no_shipped_model_for_other_contrasts_is_an_error():
    with pytest.raises(ValueError, match="no shipped model reconstructs T1, FLAIR"):
        default_model(MaskSpec(), ("T1", "FLAIR"))


@pytest.mark.parametrize("spec", [MaskSpec("radial", 0.2), MaskSpec("cartesian-random", None, 4.0, 0.08),
                                  MaskSpec("cartesian-equispaced", None, 8.0, 0.04), MaskSpec("poisson", 0.25)])
def test_infer_mask_spec(spec):
    inferred = infer_mask_spec(spec.build((160, 180)))
    expected_kind = spec.kind if spec.kind.startswith("cartesian") else "radial"
    assert inferred.kind == expected_kind
    assert inferred.nominal_rate() == pytest.approx(spec.nominal_rate(), rel=0.35)


def test_tuned_tv_covers_every_benchmark_mask_and_falls_back_to_the_nearest():
    for coupling in COUPLINGS:
        assert set(tuned_table()["settings"][coupling]) >= set(BENCHMARK_MASKS)
        for label, spec in BENCHMARK_MASKS.items():
            lam, eps0, note = tuned_tv(spec, coupling)
            assert lam > 0 and eps0 > 0 and note is None
    lam, _, note = tuned_tv(MaskSpec("radial", 0.22))
    assert note == "no TV weight was tuned for radial-0.22; using that of radial-0.20"
    assert lam == tuned_tv(MaskSpec("radial", 0.2))[0]
    settings = tuned_settings(MaskSpec("cartesian-random", None, 4.0, 0.08), "separate", lam=0.5, iterations=7)
    assert settings.lam == 0.5 and settings.coupling == "separate" and settings.iterations == 7
    with pytest.raises(ValueError, match="unknown TV coupling"):
        tuned_tv(MaskSpec(), "shared")


def test_primal_dual_weights_per_mask_and_the_fallback_to_lpam(monkeypatch):
    """Every benchmark mask and trajectory has a primal-dual lam beside LPAM's (scripts/tune_tv.py --solver
    primal-dual); an entry without one gives its LPAM lam with a note."""
    for coupling in COUPLINGS:
        for label, spec in BENCHMARK_SAMPLINGS.items():
            entry = tuned_table()["settings"][coupling][label]
            lam, eps0, note = tuned_tv(spec, coupling, "primal-dual")
            assert note is None and lam == entry["primal_dual"]["lam"] and eps0 == entry["eps0"]
            assert entry["primal_dual"]["sweep_lam"][str(lam)] == entry["primal_dual"]["val_psnr"]
            assert tuned_tv(spec, coupling) == (entry["lam"], entry["eps0"], None)  # LPAM's entry as it was
    lam, _, note = tuned_tv(MaskSpec("radial", 0.22), "joint", "primal-dual")
    assert lam == tuned_tv(MaskSpec("radial", 0.2), "joint", "primal-dual")[0] and "using that of radial-0.20" in note
    table = copy.deepcopy(tuned_table())
    del table["settings"]["joint"]["radial-0.20"]["primal_dual"]
    monkeypatch.setattr(tv_tuning, "tuned_table", lambda: table)
    lam, _, note = tuned_tv(MaskSpec("radial", 0.2), "joint", "primal-dual")
    assert lam == table["settings"]["joint"]["radial-0.20"]["lam"]
    assert note == "no primal-dual TV weight was tuned for radial-0.20; using its LPAM weight"
    with pytest.warns(UserWarning, match="using its LPAM weight"):
        assert tuned_settings(MaskSpec("radial", 0.2), solver="primal-dual").lam == lam


def test_mask_mix_trains_and_validates_every_setting():
    config = TrainConfig.from_dict({"data": {"mask": {
        "kind": "cartesian-random", "rate": None, "acceleration": 4, "pool": 8,
        "mix": [{"kind": "cartesian-equispaced", "rate": None, "acceleration": 8}]}}})
    mask = config.data.mask
    kinds = [mask.setting(i).kind for i in range(4)]
    assert kinds == ["cartesian-random", "cartesian-equispaced"] * 2
    torch.testing.assert_close(mask_for(mask, (32, 40), 3),
                               MaskSpec("cartesian-equispaced", None, 8, seed=3).build((32, 40)))
    validation = validation_masks(mask, (32, 40), 5)
    assert validation.shape == (5, 32, 40) and torch.equal(validation[1], mask_for(mask, (32, 40), 1))
    assert config.to_dict()["data"]["mask"]["mix"][0]["acceleration"] == 8
    with pytest.raises(ValueError, match="data.mask.mix"):
        TrainConfig.from_dict({"data": {"mask": {"mix": [{"kind": "radial", "speed": 3}]}}})


def test_reconstruct_chooses_the_model_for_the_mask_its_kspace_was_sampled_with(tmp_path):
    """Measured k-space brings its own mask: the default model is chosen for it, not for the --mask default."""
    import numpy as np

    from lpam.data.embedded import load_split, simulate_kspace
    from lpam.user_data import reconstruct_files

    images = load_split("test", slices=[0]).images[..., 60:92, 70:106]
    lines = MaskSpec("cartesian-random", None, 4.0, 0.08).build((32, 36))
    kspace = simulate_kspace(images, lines).numpy()
    for j, contrast in enumerate(("T1", "T2")):
        np.save(tmp_path / f"{contrast}.npy", kspace[:, j])
    # on 36 columns the centre lines make 4x lines read as 3.3x: the nearest is the Cartesian network
    with pytest.warns(UserWarning, match="cartesian-random-3.3x: using the nearest, lpam_net_joint_cartesian"):
        _, model = reconstruct_files([tmp_path / "T1.npy", tmp_path / "T2.npy"], tmp_path / "out",
                                     input_type="kspace", mask=MaskSpec(), progress=False)
    assert model.startswith("lpam_net_joint_cartesian.pt")
    assert model.endswith("plain mode, 10 phases")  # what ran, said
