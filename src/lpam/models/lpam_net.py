"""LPAM-net (docs/method.md section 4): K phases of the LPAM iteration with a learned feature map g.

Each phase is :func:`lpam.algorithm.lpam.lpam_iteration` with that phase's learned step sizes; the CNN g is
shared by all phases. ``plain`` mode always takes the residual candidate (the authors' network);
``convergent`` mode runs the acceptance test, the safeguard and the eps decay (docs/method.md section 3).

Two step rules (docs/method.md section 4b):

* ``free`` (the authors'): alpha_k and tau_k are learned independently per phase and Phi_eps = f + R_eps.
  The phases then approach the fixed points of different objectives f + (tau_k / alpha_k) R, so no single
  Phi_eps is descended;
* ``descent``: Phi_eps = sum_j f_j + lam R_eps with a learned weight lam inside Phi, and the residual step
  uses the same step on both parts, u_j = z_j - alpha_k grad_j (lam R_eps), i.e. tau_k = alpha_k: a gradient
  step on Phi_eps with the gradient of lam R_eps taken at the nearby point z. Every phase descends the one
  learned objective that the acceptance test, the safeguard and the eps rule use.

Phases past the trained K repeat the step sizes of the last phase, so ``phases`` may exceed K; a checkpoint may
store ``convergent_phases``, the count a convergent-mode call without ``phases`` runs (chosen on validation
data); plain mode, with no descent to keep past K, runs K.

With ``intensity_reference`` r set, the network is scale-equivariant (docs/method.md section 4c): each
contrast's k-space is divided by s_j = q_j / r, q_j the 99th percentile of |A_j^H y_j|, the phases solve the
normalised problem (their Phi_eps, eps and history are those of y / s) and the output is multiplied by s_j.
So LPAM-net(c y) = c LPAM-net(y) for any c > 0, and users' scans scaled unlike the training data see the
network's trained regime.

With ``initial_image: unet`` the phases start from a small residual U-Net's image of the normalised data
(docs/method.md section 4d): a wide view of the image that the 9 x 9 view of g lacks; the phases, the
acceptance test and the eps rule are unchanged (the convergence argument holds from any x0).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lpam.algorithm.lpam import Constants, History, Objective, Record, State, StepSizes, initial_state, lpam_iteration
from lpam.algorithm.regularizer import Regularizer, Term
from lpam.models.cnn import G_INITS, ComplexCNN, channels_to_complex, checked_context_branch, checked_dilations
from lpam.models.unet import ResidualUNet, UNetConfig
from lpam.options import checked_options, is_whole_number
from lpam.physics.fourier import ifft2c
from lpam.physics.mri import ContrastPhysics
from lpam.problem import check_measurements, mri_objective, per_contrast

COUPLINGS = ("joint", "separate", "shared")
MODES = ("plain", "convergent")
INITIAL_IMAGES = ("zero-filled", "learned", "unet")
STEP_RULES = ("free", "descent")
PADDINGS = ("zeros", "circular")
INTENSITY_QUANTILE = 0.99  # the normalising statistic: robust to the background fraction and to a few bright pixels


@dataclass
class LPAMNetConfig:
    """Architecture of LPAM-net; stored in every checkpoint so that a checkpoint rebuilds its model."""

    contrasts: int = 2
    phases: int = 15
    coupling: str = "joint"
    features: int = 32
    layers: int = 4
    delta: float = 0.01
    g_init: str = "tv"
    alpha_init: float = 1.0
    tau_init: float = 0.01
    abar_init: float = 0.1
    eps_init: float = 0.01
    initial_image: str = "zero-filled"
    step_rule: str = "free"
    reg_weight_init: float = 1.0
    padding: str = "zeros"
    intensity_reference: float | None = None  # q99 of |A^H y| is mapped to this value (None: no normalisation)
    constants: dict | None = None  # the network's a, c, sigma, ..., learned_backtracks (lpam.algorithm.lpam.Constants)
    dilations: list[int] | None = None  # of g's layers (None: all 1, a 9x9 view with 4 layers; section 4)
    context_dilations: list[int] | None = None  # g's context branch, one per branch layer (None: none; section 4)
    context_features: int = 16  # channels inside the context branch
    convergent_phases: int | None = None  # convergent mode's default phases (None: the trained K; chosen on validation)
    initializer_channels: int = 6  # initial_image "unet": the U-Net's first-level channels (section 4d)
    initializer_pools: int = 3  # initial_image "unet": its pooling levels (the view doubles with each)
    modes: ClassVar[tuple[str, ...]] = MODES

    def __post_init__(self) -> None:
        choices = {"coupling": COUPLINGS, "g_init": G_INITS, "initial_image": INITIAL_IMAGES,
                   "step_rule": STEP_RULES, "padding": PADDINGS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        if self.contrasts < 2:
            raise ValueError(f"LPAM-net needs at least 2 contrasts, got {self.contrasts}")
        checked_dilations(self.dilations, self.layers, self.g_init)
        checked_context_branch(self.context_dilations, self.context_features)
        UNetConfig(self.contrasts, self.initializer_channels, self.initializer_pools)  # checks the initializer's sizes
        if not is_whole_number(self.phases):
            raise ValueError(f"phases must be a whole number >= 1, got {self.phases!r}")
        if self.convergent_phases is not None and not is_whole_number(self.convergent_phases):
            raise ValueError(f"convergent_phases must be a whole number >= 1, got {self.convergent_phases!r}")
        if not self.reg_weight_init > 0:
            raise ValueError(f"reg_weight_init must be positive, got {self.reg_weight_init}")
        reference = self.intensity_reference
        if reference is not None and (isinstance(reference, bool) or not isinstance(reference, (int, float))
                                      or not reference > 0):
            raise ValueError(f"intensity_reference must be a positive number or null, got {reference!r}")
        if self.step_rule == "free" and self.reg_weight_init != 1.0:
            raise ValueError("reg_weight_init applies to step_rule 'descent' (the free rule keeps the weight in tau)")
        if self.constants is not None:
            if not isinstance(self.constants, dict):
                names = ", ".join(f.name for f in fields(Constants))
                raise ValueError(f"constants must be a mapping of {names}; got {self.constants!r}")
            Constants(**checked_options(Constants, self.constants, "model.constants option"))

    @property
    def natural_mode(self) -> str:
        """The mode to run the network in: convergent for a network whose learned steps descend one Phi_eps
        (the descent step rule, docs/method.md section 4b), plain for the free rule."""
        return "convergent" if self.step_rule == "descent" else "plain"

    def default_phases(self, mode: str) -> int:
        """The phases a call without ``phases`` runs: in convergent mode ``convergent_phases`` if set (phases past
        K repeat the last phase's steps, each still a descent step on Phi_eps), else the trained K."""
        return self.convergent_phases if mode == "convergent" and self.convergent_phases else self.phases

    @property
    def scale_equivariant(self) -> bool:
        """True when the network normalises each contrast itself (``intensity_reference``, section 4c)."""
        return self.intensity_reference is not None

    def check_schedule(self, phases: list[int]) -> None:
        """Progressive training: every stage trains 1..K phases, the last stage all K."""
        for count in phases:
            if not 1 <= count <= self.phases:
                raise ValueError(f"stage phases {count} outside 1..model.phases={self.phases}")
        if phases[-1] != self.phases:
            raise ValueError(f"the last stage of train.schedule must train model.phases={self.phases} phases, "
                             f"it trains {phases[-1]}")

    @classmethod
    def from_dict(cls, values: dict) -> "LPAMNetConfig":
        return cls(**checked_options(cls, values, "model option"))

    def to_dict(self) -> dict:
        return asdict(self)


class KSpaceInitializer(nn.Module):
    """Learned initial image: x0 = F^H (y + h(y)), h a 4-layer complex CNN on k-space (docs/method.md section 4)."""

    def __init__(self, contrasts: int, features: int = 32, delta: float = 0.01, padding: str = "zeros") -> None:
        super().__init__()
        self.cnn = ComplexCNN(contrasts, features, layers=4, delta=delta, init="random", out_channels=contrasts,
                              padding=padding)
        with torch.no_grad():  # start close to the zero-filled image
            self.cnn.weight_real[-1].mul_(0.01)
            self.cnn.weight_imag[-1].mul_(0.01)

    def forward(self, kspace: torch.Tensor) -> torch.Tensor:
        correction = channels_to_complex(self.cnn(*kspace.unbind(1)))
        return ifft2c(kspace + torch.stack(correction, dim=1))


def initializer_of(config: LPAMNetConfig) -> nn.Module | None:
    """The module that makes x0 (None: the zero-filled image): the k-space CNN ("learned"), or a residual U-Net
    with data consistency ("unet", docs/method.md section 4d) on the normalised zero-filled images; its output
    layer starts at zero, so untrained it returns DC(A^H y) (= A^H y on single-coil Cartesian k-space)."""
    if config.initial_image == "learned":
        return KSpaceInitializer(config.contrasts, config.features, config.delta, config.padding)
    if config.initial_image == "unet":
        return ResidualUNet(UNetConfig(config.contrasts, config.initializer_channels, config.initializer_pools))
    return None


class LPAMNet(nn.Module):
    """x_hat = LPAM-net(y, A): complex images (B, C, H, W) from the measurements y and their physics A
    (:class:`~lpam.physics.mri.MRIPhysics`: single-coil k-space (B, C, H, W), or multi-coil (B, C, Nc, H, W); or the
    radial :class:`~lpam.physics.radial.RadialMRIPhysics`: samples (B, C, [Nc,] K))."""

    phase_parameters = ("alpha", "tau", "abar")  # one row per phase

    def __init__(self, config: LPAMNetConfig | None = None, constants: Constants | None = None) -> None:
        super().__init__()
        self.config = config or LPAMNetConfig()
        cfg = self.config
        if constants is None:
            constants = Constants(**cfg.constants) if cfg.constants is not None else Constants()
        self.constants = constants
        n = cfg.contrasts
        in_channels, count = (n, 1) if cfg.coupling == "joint" else (1, 1 if cfg.coupling == "shared" else n)
        self.g = nn.ModuleList([ComplexCNN(in_channels, cfg.features, cfg.layers, cfg.delta, cfg.g_init,
                                           padding=cfg.padding, dilations=cfg.dilations,
                                           context_dilations=cfg.context_dilations,
                                           context_features=cfg.context_features) for _ in range(count)])
        num_terms = 1 if cfg.coupling == "joint" else n
        self.alpha = nn.Parameter(torch.full((cfg.phases, n), cfg.alpha_init))
        if cfg.step_rule == "free":
            self.tau = nn.Parameter(torch.full((cfg.phases, n), cfg.tau_init))
        else:  # lam = exp(log_reg_weight) per regulariser term, inside Phi_eps
            self.log_reg_weight = nn.Parameter(torch.full((num_terms,), math.log(cfg.reg_weight_init)))
        self.abar = nn.Parameter(torch.full((cfg.phases, n), cfg.abar_init))
        self.eps0 = nn.Parameter(torch.full((num_terms,), cfg.eps_init))
        self.initializer = initializer_of(cfg)

    def regularization_weights(self) -> list[torch.Tensor | float]:
        """lam per regulariser term: learned for the descent rule, 1 for the free rule (weight in tau)."""
        if self.config.step_rule == "free":
            return [1.0] * len(self.eps0)
        return list(self.log_reg_weight.exp())

    def regularizer(self) -> Regularizer:
        """lam R from g by coupling (docs/method.md section 1): one joint term, or one term per contrast."""
        n = self.config.contrasts
        weights = self.regularization_weights()
        if self.config.coupling == "joint":
            return Regularizer([Term(self.g[0], tuple(range(n)), weights[0])])
        maps = [self.g[0]] * n if self.config.coupling == "shared" else list(self.g)
        return Regularizer([Term(g, (j,), w) for j, (g, w) in enumerate(zip(maps, weights))])

    def step_sizes(self, phase: int) -> StepSizes:
        """Learned step sizes of one phase, kept positive through abs(); phases past K repeat the last
        phase's; the descent rule takes tau = alpha."""
        phase = min(phase, self.config.phases - 1)
        alpha = self.alpha[phase].abs()
        tau = alpha if self.config.step_rule == "descent" else self.tau[phase].abs()
        return StepSizes(alpha=list(alpha), tau=list(tau), abar=list(self.abar[phase].abs()))

    def reset_alpha(self, value: float) -> None:
        """Every phase's alpha set to ``value`` (e.g. a step the warm-started network's Phi_eps accepts)."""
        with torch.no_grad():
            self.alpha.fill_(value)

    def checkpoint_extras(self) -> dict:
        """The network's constants (lpam.algorithm.lpam.Constants), stored beside the weights."""
        return {"constants": asdict(self.constants)}

    def load_checkpoint_extras(self, payload: dict) -> None:
        """The constants a checkpoint stored (older checkpoints keep those of the config)."""
        if "constants" in payload:
            self.constants = Constants(**payload["constants"])

    def step_size_parameters(self) -> list[nn.Parameter]:
        """alpha, tau (or lam), abar and eps0: trained with their own learning rate."""
        weight = self.tau if self.config.step_rule == "free" else self.log_reg_weight
        return [self.alpha, weight, self.abar, self.eps0]

    def intensity_scale(self, adjoint_images: torch.Tensor) -> torch.Tensor:
        """s (B, C, 1, 1) with s_j = q_j / r, q_j = quantile_0.99 |A_j^H y_j| per sample (1 without a
        reference or for an all-zero contrast); a constant of the data, so no gradient flows through it."""
        reference = self.config.intensity_reference
        ones = adjoint_images.real.new_ones(adjoint_images.shape[:2] + (1, 1))
        if reference is None:
            return ones
        level = torch.quantile(adjoint_images.detach().abs().flatten(2), INTENSITY_QUANTILE, dim=2)
        return torch.where(level > 0, level / reference, 1.0).reshape(ones.shape)

    def initial_image(self, kspace: torch.Tensor, physics: ContrastPhysics) -> torch.Tensor:
        """x0 = the zero-filled image (A^H y, SENSE-combined with coil maps; density-compensated on a
        trajectory), the U-Net initialiser's image (section 4d), or the learned k-space initialiser (single-coil
        Cartesian)."""
        if self.initializer is None:
            return physics.zero_filled(kspace)
        if isinstance(self.initializer, ResidualUNet):
            return self.initializer(kspace, physics)
        if physics.multi_coil or not physics.cartesian:
            raise ValueError("the learned initial image works on single-coil Cartesian k-space; use initial_image "
                             "'zero-filled' for multi-coil or non-Cartesian data")
        return self.initializer(kspace)

    def forward(
        self,
        kspace: torch.Tensor,
        physics: ContrastPhysics,
        phases: int | None = None,
        mode: str = "plain",
        history: History | None = None,
        iterates: list[torch.Tensor] | None = None,
        measure_descent: bool = False,
        checkpoint_phases: bool = False,
        gradient_phases: int | None = None,
    ) -> torch.Tensor:
        """Run ``phases`` (default: ``config.default_phases(mode)``; past K they repeat the last phase's steps) on the measurements
        ``kspace`` of ``physics``: single-coil (B, C, H, W), or multi-coil (B, C, Nc, H, W) with coil maps in
        the physics (each data term then summed over the coils, A_j = P F S_c). ``history`` (if given)
        receives one record per phase and ``iterates`` (if given) the images x^k (B, C, H, W) after each phase;
        ``measure_descent`` (training) sets ``descent_violation`` to the learned steps' mean violation of the
        acceptance test's sufficient decrease, in either mode (over the phases ``gradient_phases`` trains
        through). ``checkpoint_phases`` (training) keeps no
        activations inside a phase and recomputes them in the backward pass (torch.utils.checkpoint, one phase
        at a time): the same gradients for about one more forward pass, at a fraction of the memory.
        ``gradient_phases`` m (training) backpropagates through the last m phases only (truncated
        backpropagation): the output is the full run's, the earlier phases run without a graph, so a run of many
        phases (the count deployed) trains at the memory and about the cost of m phases plus forward passes."""
        phases = self._checked_call(kspace, physics, phases, mode)
        if gradient_phases is not None and not (is_whole_number(gradient_phases) and gradient_phases <= phases):
            raise ValueError(f"gradient_phases must be a whole number in 1..{phases}, got {gradient_phases!r}")
        physics = physics.to(kspace.device)
        adjoint_images = physics.zero_filled(kspace)
        scale = self.intensity_scale(adjoint_images)
        kspace = kspace / per_contrast(scale[..., 0, 0], kspace.ndim).to(kspace.dtype)
        objective = mri_objective(kspace, physics, self.regularizer())
        x0 = adjoint_images / scale if self.initializer is None else self.initial_image(kspace, physics)
        state = initial_state(list(x0.unbind(1)), self.eps0.abs(), len(self.eps0))
        convergent = mode == "convergent"
        measure = measure_descent and self.training and torch.is_grad_enabled()
        options = {"safeguard": convergent, "eps_decay": convergent, "record": history is not None,
                   "measure_violation": measure}
        graph = torch.is_grad_enabled()
        first_with_graph = phases - gradient_phases if gradient_phases is not None else 0
        for phase in range(phases):
            if phase == first_with_graph:
                violation_before = state.violation  # of the phases run without a graph (0 when there are none)
            with torch.set_grad_enabled(graph and phase >= first_with_graph):
                state, record = self._phase(objective, state, phase, checkpoint_phases, options)
            if history is not None:
                history.append(record)
            if iterates is not None:
                iterates.append(torch.stack(state.blocks, dim=1).detach() * scale)
        # mean over the phases trained through and the samples of the learned steps' descent violation
        # (0 outside training)
        self.descent_violation = ((state.violation - violation_before).mean() / (phases - first_with_graph)
                                  if measure else torch.zeros(()))
        return torch.stack(state.blocks, dim=1) * scale

    def _phase(self, objective: Objective, state: State, phase: int, checkpoint_phases: bool,
               options: dict) -> tuple[State, Record | None]:
        """One phase: lpam_iteration with the phase's step sizes, recomputed in the backward pass if
        ``checkpoint_phases`` and a graph is recorded (the recomputation takes the same branches: every
        decision is deterministic)."""
        steps = self.step_sizes(phase)
        if checkpoint_phases and torch.is_grad_enabled():
            return checkpoint(lpam_iteration, objective, state, steps, self.constants, use_reentrant=False, **options)
        return lpam_iteration(objective, state, steps, self.constants, **options)

    def _checked_call(self, kspace: torch.Tensor, physics: ContrastPhysics, phases: int | None, mode: str) -> int:
        """The number of phases to run, after checking the mode, the phases and the measurements."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        phases = self.config.default_phases(mode) if phases is None else phases
        if not is_whole_number(phases):
            raise ValueError(f"phases must be a whole number >= 1, got {phases!r}")
        check_measurements(kspace, physics, self.config.contrasts)
        return phases


def count_parameters(model: nn.Module) -> int:
    """Number of trainable real parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

