import torch

from lpam.algorithm.smoothing import (
    group_norms,
    smoothed_l21,
    smoothed_l21_grad,
    smoothed_relu,
    smoothed_relu_derivative,
)


def test_smoothed_norm_bounds_the_l21_norm():
    torch.manual_seed(0)
    z = torch.randn(3, 4, 6, 5, dtype=torch.float64) * torch.tensor([0.01, 0.1, 1.0]).view(3, 1, 1, 1)
    eps = torch.tensor([0.05, 0.05, 0.5], dtype=torch.float64)
    exact = group_norms(z).flatten(1).sum(1)
    smooth = smoothed_l21(z, eps)
    pixels = 6 * 5
    assert (smooth <= exact + 1e-12).all()
    assert (exact <= smooth + eps * pixels / 2 + 1e-12).all()


def test_smoothed_norm_gradient_matches_autograd():
    z = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    eps = torch.tensor([0.3, 2.0], dtype=torch.float64)  # both branches are hit
    smoothed_l21(z, eps).sum().backward()
    torch.testing.assert_close(z.grad, smoothed_l21_grad(z.detach(), eps))


def test_smoothed_relu_pieces_and_derivative():
    delta = 0.01
    t = torch.tensor([-1.0, -delta, -0.004, 0.0, 0.003, delta, 2.0], dtype=torch.float64, requires_grad=True)
    s = smoothed_relu(t, delta)
    middle = t.detach() ** 2 / (4 * delta) + t.detach() / 2 + delta / 4
    expected = torch.where(t.detach() <= -delta, 0.0, torch.where(t.detach() >= delta, t.detach(), middle))
    torch.testing.assert_close(s.detach(), expected)
    s.sum().backward()
    torch.testing.assert_close(t.grad, smoothed_relu_derivative(t.detach(), delta))
    assert smoothed_relu_derivative(torch.tensor(delta), delta) == 1.0
