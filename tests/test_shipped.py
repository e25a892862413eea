"""The shipped weights load on a fresh install and reconstruct the embedded data better than zero-filled."""
import pytest
import torch

from lpam.algorithm.lpam import History
from lpam.checkpoint import load_checkpoint, load_model
from lpam.data.embedded import load_split, simulate_kspace
from lpam.checkpoint import WEIGHTS_DIR as WEIGHTS
from lpam.methods import BENCHMARK_MASKS, LEARNED, shipped_weights
from lpam.metrics import evaluate_contrasts
from lpam.models.lpam_net import count_parameters
from lpam.physics.masks import MaskSpec
from lpam.physics.mri import MRIPhysics

PAIR, TRIPLE = ("T1", "T2"), ("T1", "T2", "PD")
EXPECTED = {  # file: (model type, coupling, parameter range, contrasts)
    "lpam_net_joint_radial20.pt": ("lpam-net", "joint", (50_000, 60_000), PAIR),
    "lpam_net_joint_radial20_plain.pt": ("lpam-net", "joint", (50_000, 60_000), PAIR),
    "lpam_net_separate_radial20.pt": ("lpam-net", "separate", (100_000, 120_000), PAIR),
    "unet_joint_radial20.pt": ("unet", None, (1_000_000, 3_000_000), PAIR),
    "lpam_net_joint3_radial20.pt": ("lpam-net", "joint", (50_000, 60_000), TRIPLE),
    "lpam_net_joint2_finetuned_radial20.pt": ("lpam-net", "joint", (50_000, 60_000), PAIR),  # its control
    "lpam_net_joint_cartesian.pt": ("lpam-net", "joint", (120_000, 130_000), PAIR),  # with its U-Net start
    "unet_joint_cartesian.pt": ("unet", None, (1_000_000, 3_000_000), PAIR),
}


def test_every_learned_method_has_shipped_weights():
    """Every benchmark method finds weights for every benchmark mask: its own, or the shipped model of its
    family for the mask (lpam.models.shipped), reconstructing its contrasts."""
    for name, method in LEARNED.items():
        for mask_label in BENCHMARK_MASKS:
            weights = shipped_weights(name, mask_label).name
            assert weights in EXPECTED and EXPECTED[weights][3] == method.contrasts, (name, mask_label)


@pytest.mark.parametrize("weights", sorted(EXPECTED))
def test_shipped_weights_reconstruct_a_test_slice(weights):
    """Every contrast beats zero-filled in SSIM; T1 and T2 by 2 dB PSNR (PD of the 3-contrast net, trained
    for 94 steps only, by less: README, More than two contrasts)."""
    model_type, coupling, (low, high), contrasts = EXPECTED[weights]
    payload = load_checkpoint(WEIGHTS / weights)
    assert payload.get("model_type", "lpam-net") == model_type
    assert coupling is None or payload["model_config"]["coupling"] == coupling
    assert payload["train_config"]["data"]["contrasts"] == list(contrasts)  # the exact config that produced them
    model = load_model(WEIGHTS / weights)
    assert low < count_parameters(model) < high
    images = load_split("test", contrasts, slices=[10]).images
    mask = MaskSpec().build((160, 180))
    kspace, physics = simulate_kspace(images, mask), MRIPhysics(mask, len(contrasts))
    with torch.no_grad():
        recon = model(kspace, physics)
    net = evaluate_contrasts(recon.numpy(), images.numpy(), list(contrasts))
    baseline = evaluate_contrasts(physics.adjoint(kspace).numpy(), images.numpy(), list(contrasts))
    for contrast in contrasts:
        margin = 2.0 if contrast in PAIR else 0.5
        assert net[contrast]["psnr"]["mean"] > baseline[contrast]["psnr"]["mean"] + margin
        assert net[contrast]["ssim"]["mean"] > baseline[contrast]["ssim"]["mean"]


# the convergent network's promise on one test slice (docs/method.md section 4b)
MIN_ACCEPTANCE = 0.9
MAX_PLAIN_GAP_DB = 0.3


@pytest.mark.parametrize("weights, mask", [("lpam_net_joint_radial20.pt", MaskSpec()),
                                           ("lpam_net_joint_cartesian.pt", MaskSpec("cartesian-random", None, 4))])
def test_default_weights_keep_the_convergence_guarantee(weights, mask):
    """Convergent mode of the default (convergent) weights: Phi_eps never rises while eps is constant, >= 90% of the
    phases accept the learned step, eps is reduced, and plain mode is within 0.3 dB of convergent mode."""
    model = load_model(WEIGHTS / weights)
    assert model.config.step_rule == "descent" and model.config.padding == "circular"
    images = load_split("test", slices=[10]).images
    mask = mask.build((160, 180))
    kspace, physics = simulate_kspace(images, mask), MRIPhysics(mask, 2)
    history = History()
    with torch.no_grad():
        convergent = model(kspace, physics, mode="convergent", history=history)
        plain = model(kspace, physics)
    phi, eps = torch.tensor(history.phi[0], dtype=torch.float64), torch.tensor(history.eps[0])
    constant = eps[1:] == eps[:-1]
    assert bool((phi[1:][constant] <= phi[:-1][constant] * (1 + 1e-6)).all())
    accepted = sum(branch == "residual" for branch in history.branch[0]) / len(history.branch[0])
    assert accepted >= MIN_ACCEPTANCE
    assert float(eps[-1]) < float(eps[0])
    truth = images.numpy()
    for contrast in PAIR:
        gap = (evaluate_contrasts(plain.numpy(), truth, list(PAIR))[contrast]["psnr"]["mean"]
               - evaluate_contrasts(convergent.numpy(), truth, list(PAIR))[contrast]["psnr"]["mean"])
        assert abs(gap) <= MAX_PLAIN_GAP_DB


@pytest.mark.parametrize("weights", ["lpam_net_joint_radial20.pt", "lpam_net_joint_cartesian.pt"])
def test_default_networks_search_their_learned_step(weights):
    """The radial and Cartesian defaults carry the line search on the learned step (docs/method.md 4b)."""
    assert load_model(WEIGHTS / weights).constants.learned_backtracks == 2


def test_cartesian_default_runs_the_convergent_phase_count_chosen_on_validation():
    """Trained with K = 10; convergent mode runs 20 phases, the count scripts/cartesian_phases.py chose on the
    validation slab (README, Cartesian line masks); plain mode keeps K. Its phases start from a U-Net's image."""
    config = load_model(WEIGHTS / "lpam_net_joint_cartesian.pt").config
    assert (config.phases, config.default_phases("plain"), config.default_phases("convergent")) == (10, 10, 20)
    assert config.initial_image == "unet"
