"""Multi-coil physics A = P F S_c: adjointness, gradients, simulated and estimated coil maps, the multi-coil
problem, LPAM-net and the U-Net with coil maps, and `lpam evaluate --coils`."""
import json

import pytest
import torch

from lpam.checkpoint import save_checkpoint
from lpam.cli import main
from lpam.data.embedded import load_split, simulate_kspace, simulate_multicoil_kspace
from lpam.models.lpam_net import LPAMNet, LPAMNetConfig
from lpam.models.unet import ResidualUNet, UNetConfig
from lpam.physics.coils import (
    MultiCoilFourier, calibration_size, estimate_coil_maps, root_sum_of_squares, sensitivity_combine,
    simulate_coil_maps,
)
from lpam.physics.fourier import MaskedFourier
from lpam.physics.masks import MaskSpec
from lpam.physics.mri import MRIPhysics
from lpam.problem import mri_objective


def random_complex(*shape, device="cpu"):
    return torch.randn(*shape, dtype=torch.complex128, device=device)


def random_operator(batch=2, coils=3, shape=(12, 15), shared_maps=False, device="cpu"):
    mask = torch.rand(batch, *shape, device=device) < 0.4
    maps = random_complex(*(() if shared_maps else (batch,)), coils, *shape, device=device)
    return MultiCoilFourier(mask, maps)


def test_one_all_ones_coil_is_the_single_coil_operator():
    torch.manual_seed(2)
    mask = torch.rand(2, 10, 9) < 0.5
    single, multi = MaskedFourier(mask), MultiCoilFourier(mask, torch.ones(2, 1, 10, 9, dtype=torch.float64))
    x, y = random_complex(2, 10, 9), random_complex(2, 10, 9)
    torch.testing.assert_close(multi(x)[:, 0], single(x))
    torch.testing.assert_close(multi.adjoint(y[:, None]), single.adjoint(y))
    torch.testing.assert_close(multi.data_fidelity(x, y[:, None]), single.data_fidelity(x, y))
    torch.testing.assert_close(multi.data_fidelity_gradient(x, y[:, None]), single.data_fidelity_gradient(x, y))


def test_operator_errors():
    mask = torch.ones(8, 8)
    with pytest.raises(ValueError, match="NaN"):
        MultiCoilFourier(mask, torch.full((2, 8, 8), float("nan"), dtype=torch.complex64))
    with pytest.raises(ValueError, match="no coil"):
        MultiCoilFourier(mask, torch.ones(0, 8, 8))
    with pytest.raises(ValueError, match=r"\(Nc, H, W\)"):
        MultiCoilFourier(mask, torch.ones(8, 8))
    with pytest.raises(ValueError, match="spatial shape"):
        MultiCoilFourier(mask, torch.ones(2, 8, 9))
    op = MultiCoilFourier(mask, torch.ones(3, 2, 8, 8))
    with pytest.raises(ValueError, match="3 samples"):
        op(random_complex(2, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        op.adjoint(random_complex(3, 4, 8, 8))


def test_simulated_maps_are_normalised_smooth_and_deterministic():
    maps = simulate_coil_maps(8, (40, 45))
    assert maps.shape == (8, 40, 45) and maps.dtype == torch.complex64
    torch.testing.assert_close(root_sum_of_squares(maps, dim=0), torch.ones(40, 45))
    torch.testing.assert_close(maps, simulate_coil_maps(8, (40, 45)), rtol=0, atol=0)
    assert (maps[:, 1:] - maps[:, :-1]).abs().max() < 0.1  # smooth: small change between neighbours
    assert maps.abs().amax(dim=(1, 2)).min() > 3 * maps.abs().amin(dim=(1, 2)).max()  # each coil is local
    x = random_complex(1, 40, 45)  # full sampling: A^H A = I
    op = MultiCoilFourier(torch.ones(40, 45), maps.to(torch.complex128))
    torch.testing.assert_close(op.normal(x), x)
    with pytest.raises(ValueError, match="num_coils"):
        simulate_coil_maps(0, (8, 8))


def test_calibration_size():
    assert calibration_size(MaskSpec().build((160, 180))) == (19, 19)
    cartesian = MaskSpec("cartesian-equispaced", None, 4, 0.08).build((160, 180))
    height, width = calibration_size(cartesian)
    assert height >= 159 and 13 <= width <= 15
    with pytest.raises(ValueError, match="centre"):
        calibration_size(torch.zeros(8, 8))


@pytest.mark.parametrize("method", ["lowres", "espirit"])
def test_estimated_maps_match_the_true_maps_inside_the_object(method):
    images = load_split("test", slices=[10]).images
    maps = simulate_coil_maps(8, (160, 180))
    kspace = simulate_multicoil_kspace(images, torch.ones(160, 180), maps)  # centre fully sampled
    estimate = estimate_coil_maps(kspace, (24, 24), method)
    assert estimate.shape == kspace.shape
    interior = torch.zeros(160, 180, dtype=torch.bool)  # away from the FOV border, where the periodic
    interior[15:-15, 15:-15] = True                      # low-resolution image wraps the cut-off head
    for contrast in range(2):
        inside = interior & (images[0, contrast] > 0.2)
        e, s = estimate[0, contrast][:, inside], maps[:, inside]
        assert ((e.conj() * s).sum().abs() / (e.norm() * s.norm())).item() > 0.95


def test_estimate_errors():
    with pytest.raises(ValueError, match="unknown coil map method"):
        estimate_coil_maps(random_complex(2, 8, 8), (4, 4), "walsh")
    with pytest.raises(ValueError, match="complex"):
        estimate_coil_maps(torch.ones(2, 8, 8), (4, 4), "lowres")
    with pytest.raises(ValueError, match="calibration size"):
        estimate_coil_maps(random_complex(2, 8, 8), (9, 4), "lowres")


def test_multicoil_problem_full_sampling_recovers_the_images():
    images = load_split("test", slices=[0]).images[..., :32, :40]
    maps = simulate_coil_maps(4, (32, 40))
    full = torch.ones(32, 40)
    kspace = simulate_multicoil_kspace(images, full, maps)
    assert kspace.shape == (1, 2, 4, 32, 40)
    torch.testing.assert_close(kspace[:, 1], MultiCoilFourier(full, maps)(images[:, 1].to(torch.complex64)))
    physics = MRIPhysics(full, 2, maps)
    torch.testing.assert_close(physics.adjoint(kspace).real, images, atol=1e-5, rtol=0)
    torch.testing.assert_close(physics.root_sum_of_squares(kspace), images, atol=1e-5, rtol=0)
    coil_images = maps * images[:, :, None]
    torch.testing.assert_close(sensitivity_combine(coil_images, maps).real, images)
    torch.testing.assert_close(root_sum_of_squares(coil_images, dim=2), images)


def test_multicoil_objective_sums_the_coil_data_terms_per_contrast():
    torch.manual_seed(3)
    mask = torch.rand(2, 2, 12, 15) < 0.5  # per-contrast masks
    maps = random_complex(2, 2, 3, 12, 15).to(torch.complex64)  # per-contrast maps
    kspace, x = random_complex(2, 2, 3, 12, 15).to(torch.complex64), random_complex(2, 2, 12, 15).to(torch.complex64)
    objective = mri_objective(kspace, MRIPhysics(mask, 2, maps), regularizer=None)
    for j in range(2):
        op = MultiCoilFourier(mask[:, j], maps[:, j])
        torch.testing.assert_close(objective.smooth[j].value(x[:, j]), op.data_fidelity(x[:, j], kspace[:, j]))
        torch.testing.assert_close(objective.smooth[j].grad(x[:, j]), op.data_fidelity_gradient(x[:, j], kspace[:, j]))


def test_physics_check_names_the_problem():
    single, multi = MRIPhysics(torch.ones(8, 8), 2), MRIPhysics(torch.ones(8, 8), 2, torch.ones(3, 8, 8))
    with pytest.raises(ValueError, match="needs coil sensitivity maps"):
        single.check(random_complex(1, 2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, C, Nc, H, W\)"):
        multi.check(random_complex(1, 2, 8, 8))
    with pytest.raises(ValueError, match="3 coils"):
        multi.check(random_complex(1, 2, 4, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        multi.check(torch.full((1, 2, 3, 8, 8), complex("nan")))


def test_lpam_net_with_maps_runs_and_checks_its_inputs():
    torch.manual_seed(4)
    images = load_split("test", slices=[0]).images[..., 60:84, 70:98]
    mask, maps = MaskSpec().build((24, 28)), simulate_coil_maps(4, (24, 28))
    kspace = simulate_multicoil_kspace(images, mask, maps)
    model = LPAMNet(LPAMNetConfig(phases=2, features=8))
    with torch.no_grad():
        out = model(kspace, MRIPhysics(mask, 2, maps))
        assert out.shape == (1, 2, 24, 28) and torch.isfinite(torch.view_as_real(out)).all()
        single = simulate_kspace(images, mask)  # one all-ones coil is the single-coil network
        torch.testing.assert_close(model(single[:, :, None], MRIPhysics(mask, 2, torch.ones(1, 24, 28))),
                                   model(single, MRIPhysics(mask, 2)))
    with pytest.raises(ValueError, match="needs coil sensitivity maps"):
        model(kspace, MRIPhysics(mask, 2))
    with pytest.raises(ValueError, match="NaN"):
        model(kspace, MRIPhysics(mask, 2, torch.full_like(maps, complex("nan"))))
    with pytest.raises(ValueError, match="single-coil"):
        LPAMNet(LPAMNetConfig(phases=1, features=8, initial_image="learned"))(kspace, MRIPhysics(mask, 2, maps))


def test_unet_with_maps_applies_a_data_consistency_step():
    images = load_split("test", slices=[0]).images[..., 60:84, 70:98]
    mask, maps = MaskSpec().build((24, 28)), simulate_coil_maps(4, (24, 28))
    unet = ResidualUNet(UNetConfig(channels=4, pools=1))
    with torch.no_grad():
        torch.nn.init.normal_(unet.output.weight, std=0.1)
        full = torch.ones(24, 28)  # full sampling: DC(x) = A^H y, the true images, whatever U did
        out = unet(simulate_multicoil_kspace(images, full, maps), MRIPhysics(full, 2, maps))
        torch.testing.assert_close(out.real, images, atol=1e-5, rtol=0)
        kspace = simulate_multicoil_kspace(images, mask, maps)  # undersampled: the residual does not grow
        unchecked = ResidualUNet(UNetConfig(channels=4, pools=1, data_consistency=False))
        unchecked.load_state_dict(unet.state_dict())
        physics = MRIPhysics(mask, 2, maps)
        before, after = unchecked(kspace, physics), unet(kspace, physics)
        op = MultiCoilFourier(mask, maps)
        for j in range(2):
            assert op.data_fidelity(after[:, j], kspace[:, j]) < op.data_fidelity(before[:, j], kspace[:, j])
        single = simulate_kspace(images, mask)  # one all-ones coil: the single-coil hard DC
        torch.testing.assert_close(unet(single[:, :, None], MRIPhysics(mask, 2, torch.ones(1, 24, 28))),
                                   unet(single, MRIPhysics(mask, 2)),
                                   atol=1e-6, rtol=0)


def test_evaluate_command_with_coils(tmp_path):
    checkpoint = tmp_path / "tiny.pt"
    torch.manual_seed(0)
    save_checkpoint(checkpoint, LPAMNet(LPAMNetConfig(phases=1, features=8)))
    for extra, maps in (([], "simulated"), (["--estimate-maps", "lowres"], "estimated (lowres)")):
        out = tmp_path / f"eval{len(extra)}"
        code = main(["evaluate", "--checkpoint", str(checkpoint), "--coils", "4", "--slices", "0", *extra,
                     "--quiet", "--out", str(out)])
        assert code == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert set(metrics["methods"]) == {"zero-filled-rss", "zero-filled-sense", "tiny"}
        assert set(metrics["methods"]["tiny"]["T1"]) == {"psnr", "ssim", "nmse", "rmse"}
        assert metrics["coils"]["count"] == 4 and metrics["coils"]["maps"].startswith(maps)
        assert (out / "figure.png").is_file()


def test_evaluate_command_coil_errors(tmp_path, capsys):
    code = main(["evaluate", "--estimate-maps", "lowres", "--slices", "0", "--quiet", "--out", str(tmp_path / "a")])
    assert code == 2 and "number of coils" in capsys.readouterr().err
    code = main(["evaluate", "--coils", "0", "--slices", "0", "--quiet", "--out", str(tmp_path / "b")])
    assert code == 2 and "num_coils" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
