"""LPAM-net: the hand-written backward through g, the TV initialisation, couplings and modes."""
import math

import pytest
import torch

from lpam.algorithm.lpam import History
from lpam.algorithm.regularizer import autograd_smoothed_value_and_grad
from lpam.algorithm.smoothing import group_norms
from lpam.models.cnn import (ComplexCNN, circular_pad, circular_pad_adjoint, wrapping_circular_pad,
                             wrapping_circular_pad_adjoint)
from lpam.models.lpam_net import COUPLINGS, LPAMNet, LPAMNetConfig, count_parameters
from lpam.physics.fourier import fft2c
from lpam.physics.mri import MRIPhysics
from lpam.regularizers.tv import FiniteDifferences


@pytest.mark.parametrize("padding", ["zeros", "circular"])
@pytest.mark.parametrize("dilations, context", [(None, None), ((1, 2, 3, 2), None), (None, (2, 3)), (None, (4,))])
def test_hand_written_backward_is_differentiable_for_training(padding, dilations, context):
    """The hand-written gradient and its derivatives (training through the gradient step) agree with autograd,
    with dilated layers and a context branch too (its silent last layer made non-zero here)."""
    torch.manual_seed(0)
    g = ComplexCNN(2, features=4, init="random", padding=padding, dilations=dilations, context_dilations=context,
                   context_features=3).double()
    for weight in list(g.context_real) + list(g.context_imag):
        torch.nn.init.normal_(weight.data, std=0.3)
    x = [0.3 * torch.randn(1, 8, 9, dtype=torch.complex128) for _ in range(2)]
    eps = torch.tensor([0.05], dtype=torch.float64)
    _, grads = g.smoothed_value_and_grad(x, eps)
    first = torch.autograd.grad(sum(gr.abs().square().sum() for gr in grads), list(g.parameters()))
    _, reference = autograd_smoothed_value_and_grad(g, x, eps)
    for a, b in zip(grads, reference):
        torch.testing.assert_close(a, b)
    second = torch.autograd.grad(sum(gr.abs().square().sum() for gr in reference), list(g.parameters()))
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("padding, boundary", [("zeros", "zero-extension"), ("circular", "circular")])
@pytest.mark.parametrize("dilations", [None, (1, 2, 4, 8)])
def test_tv_initialisation_is_joint_tv_of_the_matching_boundary(padding, boundary, dilations):
    """g's TV initialisation equals joint TV on every pixel, borders included, with the TV boundary that its
    padding implies: zero padding is x = 0 outside the image, circular padding a periodic image. Dilated
    later layers keep it (their identity is the centre tap)."""
    torch.manual_seed(0)
    g = ComplexCNN(2, init="tv", padding=padding, dilations=dilations)
    x = [torch.rand(1, 30, 34).to(torch.complex64) for _ in range(2)]
    learned = group_norms(g(*x))
    tv = group_norms(FiniteDifferences(boundary)(*x))
    assert (learned - tv).abs().max() < 0.03  # the smoothed-ReLU floor, docs/method.md section 4


def test_parameter_counts():
    counts = {c: count_parameters(LPAMNet(LPAMNetConfig(coupling=c))) for c in COUPLINGS}
    assert 50_000 < counts["joint"] < 60_000
    assert 105_000 < counts["separate"] < 115_000
    assert counts["shared"] < counts["joint"]


def sample(batch=1, size=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 2, size, size, generator=generator)
    mask = torch.rand(size, size, generator=generator) < 0.3
    return fft2c(images.to(torch.complex64)) * mask, MRIPhysics(mask, 2), images


@pytest.mark.parametrize("coupling", COUPLINGS)
@pytest.mark.parametrize("initial_image", ["zero-filled", "learned"])
def test_training_step_reaches_every_parameter(coupling, initial_image):
    model = LPAMNet(LPAMNetConfig(coupling=coupling, phases=2, features=8, initial_image=initial_image))
    kspace, physics, images = sample()
    loss = (model(kspace, physics).abs() - images).square().mean()
    loss.backward()
    for name, parameter in model.named_parameters():
        if name.startswith("abar"):
            continue  # the safeguard step is unused in plain mode
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        if name != "eps0":  # eps0 only acts where ||g_i|| < eps, possibly nowhere on random images
            assert parameter.grad.abs().sum() > 0, name


def test_convergent_mode_records_history_and_trains(device):
    model = LPAMNet(LPAMNetConfig(phases=3, features=8)).to(device)
    kspace, physics, images = sample(batch=2)
    history = History()
    out = model(kspace.to(device), physics.to(device), mode="convergent", history=history)
    assert out.shape == (2, 2, 24, 24)
    assert len(history.phi) == 2 and len(history.phi[0]) == 3
    assert set(history.branch[0]) <= {"residual", "safeguard"}
    (out.abs() - images.to(device)).square().mean().backward()
    assert torch.isfinite(model.tau.grad).all()


def test_plain_mode_at_tv_initialisation_improves_on_zero_filled():
    size = 48
    v, h = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((v - 24) ** 2 + (h - 22) ** 2 < 200).float()
    images = torch.stack([0.8 * disc, 0.3 * disc + 0.4 * ((v - 20) ** 2 + (h - 26) ** 2 < 40).float()])[None]
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(size, size, generator=generator) < 0.25
    mask[20:28, 20:28] = True
    kspace = fft2c(images.to(torch.complex64)) * mask
    model = LPAMNet(LPAMNetConfig(phases=15))
    with torch.no_grad():
        out = model(kspace, MRIPhysics(mask, 2))
        zero_filled = model.initial_image(kspace, MRIPhysics(mask, 2))
    assert (out.abs() - images).norm() < (zero_filled.abs() - images).norm()


def test_network_input_errors():
    model = LPAMNet(LPAMNetConfig(phases=2, features=8))
    kspace, physics, _ = sample()
    with pytest.raises(ValueError, match="mode"):
        model(kspace, physics, mode="fast")
    with pytest.raises(ValueError, match="phases must be a whole number"):
        model(kspace, physics, phases=0)
    with pytest.raises(ValueError, match="spatial shape"):
        model(kspace, MRIPhysics(physics.mask[:-1], 2))
    with pytest.raises(ValueError, match="NaN"):
        model(kspace * float("nan"), physics)
    with pytest.raises(ValueError, match="expects 2 contrasts"):
        model(torch.cat([kspace, kspace], 1), MRIPhysics(physics.mask, 4))
    with pytest.raises(TypeError, match="MRIPhysics"):
        model(kspace, physics.mask)
    with pytest.raises(ValueError, match="samples no k-space point"):
        MRIPhysics(torch.zeros_like(physics.mask), 2)
    with pytest.raises(ValueError, match="unknown coupling"):
        LPAMNetConfig(coupling="both")
    with pytest.raises(ValueError, match="unknown model option"):
        LPAMNetConfig.from_dict({"phase": 3})


@pytest.mark.parametrize("dilations, message", [
    ([1, 2, 4], "4 whole numbers"), ([1, 0, 1, 1], "4 whole numbers"), ([1, 2.5, 1, 1], "4 whole numbers"),
    ("1248", "4 whole numbers"), ([2, 2, 2, 2], "first layer"),
])
def test_bad_dilations_are_refused(dilations, message):
    with pytest.raises(ValueError, match=message):
        LPAMNetConfig(dilations=dilations)


def test_context_branch_starts_silent_and_learns():
    """A context branch adds 2 * 9 * (32 * 16 + 16 * 32) parameters, starts at zero output (a network built
    with it and warm-started from one without computes the same), and its last layer gets a gradient."""
    plain, context = (LPAMNet(LPAMNetConfig(phases=2, step_rule="descent", reg_weight_init=0.01,
                                            context_dilations=c)) for c in (None, [4, 12]))
    assert count_parameters(context) - count_parameters(plain) == 2 * 9 * (32 * 16 + 16 * 32)
    missing, unexpected = context.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(".context_" in name for name in missing)
    kspace, physics, images = sample(size=28)
    torch.testing.assert_close(context(kspace, physics), plain(kspace, physics))
    loss = (context(kspace, physics).abs() - images).square().mean()
    loss.backward()
    assert context.g[0].context_real[-1].grad.abs().sum() > 0


@pytest.mark.parametrize("values, message", [
    ({"context_dilations": [0, 2]}, "context_dilations"), ({"context_dilations": "4"}, "context_dilations"),
    ({"context_dilations": [4, 12], "context_features": 0}, "context_features"),
])
def test_bad_context_branch_is_refused(values, message):
    with pytest.raises(ValueError, match=message):
        LPAMNetConfig(**values)


def test_dilations_keep_the_parameter_count():
    assert count_parameters(LPAMNet(LPAMNetConfig(dilations=[1, 2, 4, 8]))) == count_parameters(LPAMNet(LPAMNetConfig()))


@pytest.mark.parametrize("width", [1, 3, 12])
def test_circular_padding_adjoint(width):
    """<pad(x), y> = <x, pad^T(y)>, and circular g is periodic: shifting the input shifts the features."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    y = torch.randn(2, 3, 9 + 2 * width, 11 + 2 * width, dtype=torch.float64)
    lhs, rhs = (circular_pad(x, width) * y).sum(), (x * circular_pad_adjoint(y, width)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=0)
    # the indexing version (any width) agrees with the fast one where both apply
    torch.testing.assert_close(circular_pad(x, width), wrapping_circular_pad(x, width))
    torch.testing.assert_close(circular_pad_adjoint(y, width), wrapping_circular_pad_adjoint(y, width))
    g = ComplexCNN(2, features=6, init="random", padding="circular", dilations=(1, 1, width, 1)).double()
    images = [torch.randn(1, 10, 12, dtype=torch.complex128) for _ in range(2)]
    shifted = [torch.roll(im, (3, -4), (-2, -1)) for im in images]
    torch.testing.assert_close(torch.roll(g(*images), (3, -4), (-2, -1)), g(*shifted))


def descent_model(**options) -> LPAMNet:
    return LPAMNet(LPAMNetConfig(**{"phases": 3, "features": 8, "step_rule": "descent", "reg_weight_init": 0.01,
                                    "padding": "circular", **options}))


def test_descent_rule_ties_tau_to_alpha_and_repeats_the_last_phase():
    model = descent_model()
    with torch.no_grad():
        model.alpha.copy_(torch.tensor([[0.3, 0.4], [0.5, 0.6], [0.7, 0.8]]))
    for phase, expected in ((0, [0.3, 0.4]), (2, [0.7, 0.8]), (9, [0.7, 0.8])):
        steps = model.step_sizes(phase)
        torch.testing.assert_close(torch.stack(list(steps.tau)), torch.tensor(expected))
        torch.testing.assert_close(torch.stack(list(steps.alpha)), torch.tensor(expected))
    assert not hasattr(model, "tau")
    assert any(p is model.log_reg_weight for p in model.step_size_parameters())
    kspace, physics, _ = sample()
    deeper = model(kspace, physics, phases=7, mode="convergent")  # more phases than trained
    assert deeper.shape == kspace.shape and torch.isfinite(torch.view_as_real(deeper)).all()


def test_descent_rule_objective_weight_is_learned_inside_phi():
    """Phi_eps = f + lam R_eps: the regulariser carries lam, and lam receives a gradient in training."""
    model = descent_model()
    kspace, physics, _ = sample()
    x = [kspace[:, 0], kspace[:, 1]]
    eps = torch.full((kspace.shape[0], 1), 0.01)
    value = model.regularizer().value(x, eps)
    with torch.no_grad():
        model.log_reg_weight.add_(math.log(2.0))
    torch.testing.assert_close(model.regularizer().value(x, eps), 2 * value)
    model.train()
    out = model(kspace, physics, mode="convergent", measure_descent=True)
    (out.abs().square().sum() + model.descent_violation).backward()
    assert model.log_reg_weight.grad is not None and model.log_reg_weight.grad.abs().sum() > 0


def gradients_of_a_training_step(model: LPAMNet, **options) -> tuple[dict[str, torch.Tensor], History]:
    kspace, physics, images = sample(batch=2)
    history = History()
    model.zero_grad(set_to_none=True)
    out = model(kspace, physics, mode="convergent", measure_descent=True, history=history, **options)
    ((out.abs() - images).square().mean() + model.descent_violation).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}, history


def test_checkpointed_phases_give_the_same_gradients_through_both_branches():
    """Recomputing each phase in the backward pass (torch.utils.checkpoint) changes nothing but memory."""
    model = descent_model(phases=4)
    model.train()
    with torch.no_grad():  # large steps on phases 0 and 2: their learned steps are rejected, the safeguard runs
        model.alpha[0::2].fill_(40.0)
    plain, history = gradients_of_a_training_step(model)
    assert {"residual", "safeguard"} <= {b for sample in history.branch for b in sample}
    recomputed, again = gradients_of_a_training_step(model, checkpoint_phases=True)
    assert again.branch == history.branch and plain.keys() == recomputed.keys()
    assert "abar" in plain  # the safeguard step was trained
    for name, grad in plain.items():
        torch.testing.assert_close(recomputed[name], grad, rtol=1e-5, atol=1e-8, msg=name)


def test_gradient_phases_truncate_the_backpropagation_not_the_run():
    """gradient_phases m: the output is the full run's; only the last m phases carry gradients (the step sizes of
    the earlier phases get none), and m = all phases gives the full gradients."""
    model = descent_model(phases=4)
    model.train()
    with torch.no_grad():
        model.alpha.copy_(torch.linspace(0.5, 1.5, 4)[:, None].expand_as(model.alpha))
    full, history = gradients_of_a_training_step(model)
    same, _ = gradients_of_a_training_step(model, gradient_phases=4)
    for name, grad in full.items():
        torch.testing.assert_close(same[name], grad, msg=name)
    truncated, again = gradients_of_a_training_step(model, gradient_phases=1)
    assert again.phi == history.phi  # the same run
    assert truncated["alpha"][:3].abs().sum() == 0 and truncated["alpha"][3].abs().sum() > 0
    g_weights = [name for name in full if name.startswith("g.")]
    assert g_weights and all(truncated[name].abs().sum() > 0 for name in g_weights)
    assert any(not torch.allclose(truncated[name], full[name]) for name in g_weights)
    kspace, physics, _ = sample()
    with torch.no_grad():
        torch.testing.assert_close(model(kspace, physics, mode="convergent", gradient_phases=2),
                                   model(kspace, physics, mode="convergent"))


def test_descent_violation_with_gradient_phases_is_the_mean_over_the_phases_trained_through():
    """With gradient_phases m the descent-violation term averages the last m phases' violations (the ones with a
    graph), not all phases' (which would scale its gradient down by m / phases)."""
    model = descent_model(phases=4)
    model.train()
    with torch.no_grad():  # steps too long on phases 1 and 3: their learned steps violate the sufficient decrease
        model.alpha[1::2].fill_(40.0)
    kspace, physics, _ = sample(batch=2)

    def violation(phases, **options):
        model(kspace, physics, phases=phases, mode="convergent", measure_descent=True, **options)
        return model.descent_violation.detach()

    total = {k: violation(k) * k for k in (2, 4)}  # summed over the first k phases
    assert total[4] > total[2] > 0
    torch.testing.assert_close(violation(4, gradient_phases=2), (total[4] - total[2]) / 2)
    torch.testing.assert_close(violation(4, gradient_phases=4), total[4] / 4)


@pytest.mark.parametrize("count", [0, 5, 1.5, True])
def test_gradient_phases_must_lie_within_the_run(count):
    model = descent_model(phases=4)
    kspace, physics, _ = sample()
    with pytest.raises(ValueError, match="gradient_phases must be a whole number in 1..4"):
        model(kspace, physics, mode="convergent", gradient_phases=count)


def test_learned_step_line_search_trains_the_shortened_step():
    """With learned_backtracks, a too-long learned step (alpha 8 on phases 0 and 2) is halved until it passes the
    acceptance test instead of going to the safeguard; the step size gets its gradient through the shortened
    candidate, and recomputing the phases in the backward pass takes the same decisions and gradients."""
    model = descent_model(phases=4, constants={"learned_backtracks": 4})
    model.train()
    with torch.no_grad():
        model.alpha[0::2].fill_(8.0)
    plain, history = gradients_of_a_training_step(model)
    for branches, halvings in zip(history.branch, history.backtracks):
        assert set(branches) == {"residual"} and halvings[0] >= 1 and halvings[2] >= 1
    assert plain["alpha"][0].abs().sum() > 0
    recomputed, again = gradients_of_a_training_step(model, checkpoint_phases=True)
    assert again.backtracks == history.backtracks
    for name, grad in plain.items():
        torch.testing.assert_close(recomputed[name], grad, rtol=1e-5, atol=1e-8, msg=name)


def test_descent_violation_is_zero_exactly_for_sufficient_decrease():
    from lpam.algorithm.lpam import Objective, SmoothFunction, descent_violation
    from lpam.algorithm.regularizer import Regularizer, Term

    quadratic = SmoothFunction(value=lambda x: 0.5 * x.square().flatten(1).sum(1), grad=lambda x: x)
    objective = Objective([quadratic, quadratic], Regularizer([Term(lambda a, b: torch.stack([a, b], 1), (0, 1))]))
    x = [torch.ones(1, 4, 4), torch.ones(1, 4, 4)]
    eps = torch.full((1, 1), 0.1)
    good = [0.5 * b for b in x]  # Phi falls by far more than ||u - x||^2 / a
    bad = [2.0 * b for b in x]  # Phi rises
    assert descent_violation(objective, x, good, eps, a=100.0).item() == 0.0
    assert descent_violation(objective, x, bad, eps, a=100.0).item() > 0.0


def test_new_options_are_checked():
    with pytest.raises(ValueError, match="unknown step_rule"):
        LPAMNetConfig(step_rule="fast")
    with pytest.raises(ValueError, match="unknown padding"):
        LPAMNetConfig(padding="reflect")
    with pytest.raises(ValueError, match="reg_weight_init applies"):
        LPAMNetConfig(reg_weight_init=0.5)
    with pytest.raises(ValueError, match="constant sigma"):
        LPAMNetConfig(constants={"sigma": -1.0})
    assert LPAMNet(LPAMNetConfig(phases=2, features=8, constants={"sigma": 300.0})).constants.sigma == 300.0
    for bad in (0.0, -1.0, True, "0.9"):
        with pytest.raises(ValueError, match="intensity_reference"):
            LPAMNetConfig(intensity_reference=bad)


@pytest.mark.parametrize("mode", ["plain", "convergent"])
@pytest.mark.parametrize("factor", [0.05, 0.5, 3.0])
def test_intensity_reference_makes_the_network_scale_equivariant(mode, factor):
    """LPAM-net(c y) = c LPAM-net(y), per contrast, and the history is that of the normalised problem."""
    torch.manual_seed(0)
    model = LPAMNet(LPAMNetConfig(phases=3, features=8, step_rule="descent", reg_weight_init=0.01,
                                  intensity_reference=0.9))
    kspace, physics, _ = sample()
    factors = torch.tensor([factor, 1.0]).reshape(1, 2, 1, 1)  # contrasts scaled independently
    histories = [History(), History()]
    with torch.no_grad():
        out = model(kspace, physics, mode=mode, history=histories[0])
        scaled = model(kspace * factors, physics, mode=mode, history=histories[1])
    torch.testing.assert_close(scaled, out * factors, rtol=1e-4, atol=1e-5 * float(out.abs().max()))
    torch.testing.assert_close(torch.tensor(histories[1].phi), torch.tensor(histories[0].phi), rtol=1e-4, atol=1e-6)


def test_without_intensity_reference_scale_changes_the_output():
    """The default (no normalisation) is not equivariant: the test above can fail."""
    torch.manual_seed(0)
    model = LPAMNet(LPAMNetConfig(phases=3, features=8))
    kspace, physics, _ = sample()
    with torch.no_grad():
        out, scaled = model(kspace, physics), model(0.05 * kspace, physics)
    assert (scaled - 0.05 * out).abs().max() > 1e-3 * float(0.05 * out.abs().max())


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "ten"])
def test_convergent_phases_must_be_a_whole_positive_count(value):
    with pytest.raises(ValueError, match="convergent_phases must be a whole number"):
        LPAMNetConfig(phases=2, convergent_phases=value)


@pytest.mark.parametrize("stored, plain, convergent", [(None, 2, 2), (5, 2, 5)])
def test_convergent_phases_is_the_convergent_default_and_may_exceed_k(stored, plain, convergent):
    """A stored count applies to convergent mode (descent steps past K); plain mode keeps the trained K; an
    explicit count wins."""
    kspace, physics, _ = sample()
    model = LPAMNet(LPAMNetConfig(phases=2, features=8, step_rule="descent", reg_weight_init=0.01,
                                  convergent_phases=stored))
    for mode, expected in (("plain", plain), ("convergent", convergent)):
        for phases, count in ((None, expected), (3, 3)):
            history = History()
            with torch.no_grad():
                model(kspace, physics, phases=phases, mode=mode, history=history)
            assert len(history.phi[0]) == count
            assert model.config.default_phases(mode) == expected
