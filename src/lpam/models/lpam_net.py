"""LPAM-net (SPEC.md section 4): K phases of the LPAM iteration with a learned feature map g.

Each phase is :func:`lpam.algorithm.lpam.lpam_iteration` with that phase's learned step sizes; the CNN g is
shared by all phases. ``plain`` mode always takes the residual candidate (the authors' network);
``convergent`` mode runs the acceptance test, the safeguard and the eps decay of SPEC.md section 3.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from lpam.algorithm.lpam import Constants, History, StepSizes, initial_state, lpam_iteration
from lpam.algorithm.regularizer import Regularizer, Term
from lpam.models.cnn import G_INITS, ComplexCNN, channels_to_complex
from lpam.options import checked_options
from lpam.physics.fourier import ifft2c
from lpam.problem import check_kspace, mri_objective, zero_filled

COUPLINGS = ("joint", "separate", "shared")
MODES = ("plain", "convergent")
INITIAL_IMAGES = ("zero-filled", "learned")


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

    def __post_init__(self) -> None:
        choices = {"coupling": COUPLINGS, "g_init": G_INITS, "initial_image": INITIAL_IMAGES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        if self.contrasts < 2:
            raise ValueError(f"LPAM-net needs at least 2 contrasts, got {self.contrasts}")
        if self.phases < 1:
            raise ValueError(f"phases must be >= 1, got {self.phases}")

    @classmethod
    def from_dict(cls, values: dict) -> "LPAMNetConfig":
        return cls(**checked_options(cls, values, "model option"))

    def to_dict(self) -> dict:
        return asdict(self)


class KSpaceInitializer(nn.Module):
    """Learned initial image: x0 = F^H (y + h(y)), h a 4-layer complex CNN on k-space (SPEC.md section 4)."""

    def __init__(self, contrasts: int, features: int = 32, delta: float = 0.01) -> None:
        super().__init__()
        self.cnn = ComplexCNN(contrasts, features, layers=4, delta=delta, init="random", out_channels=contrasts)
        with torch.no_grad():  # start close to the zero-filled image
            self.cnn.weight_real[-1].mul_(0.01)
            self.cnn.weight_imag[-1].mul_(0.01)

    def forward(self, kspace: torch.Tensor) -> torch.Tensor:
        correction = channels_to_complex(self.cnn(*kspace.unbind(1)))
        return ifft2c(kspace + torch.stack(correction, dim=1))


class LPAMNet(nn.Module):
    """x_hat = LPAM-net(y, P): complex images (B, C, H, W) from k-space (B, C, H, W) and mask, or from
    multi-coil k-space (B, C, Nc, H, W), mask and coil maps."""

    def __init__(self, config: LPAMNetConfig | None = None, constants: Constants | None = None) -> None:
        super().__init__()
        self.config = config or LPAMNetConfig()
        self.constants = constants or Constants()
        cfg = self.config
        n = cfg.contrasts
        if cfg.coupling == "joint":
            self.g = nn.ModuleList([ComplexCNN(n, cfg.features, cfg.layers, cfg.delta, cfg.g_init)])
        elif cfg.coupling == "shared":
            self.g = nn.ModuleList([ComplexCNN(1, cfg.features, cfg.layers, cfg.delta, cfg.g_init)])
        else:
            self.g = nn.ModuleList([ComplexCNN(1, cfg.features, cfg.layers, cfg.delta, cfg.g_init) for _ in range(n)])
        num_terms = 1 if cfg.coupling == "joint" else n
        self.alpha = nn.Parameter(torch.full((cfg.phases, n), cfg.alpha_init))
        self.tau = nn.Parameter(torch.full((cfg.phases, n), cfg.tau_init))
        self.abar = nn.Parameter(torch.full((cfg.phases, n), cfg.abar_init))
        self.eps0 = nn.Parameter(torch.full((num_terms,), cfg.eps_init))
        self.initializer = KSpaceInitializer(n, cfg.features, cfg.delta) if cfg.initial_image == "learned" else None

    def regularizer(self) -> Regularizer:
        """R from g by coupling (SPEC.md section 1): one joint term, or one term per contrast."""
        n = self.config.contrasts
        if self.config.coupling == "joint":
            return Regularizer([Term(self.g[0], tuple(range(n)))])
        maps = [self.g[0]] * n if self.config.coupling == "shared" else list(self.g)
        return Regularizer([Term(g, (j,)) for j, g in enumerate(maps)])

    def step_sizes(self, phase: int) -> StepSizes:
        """Learned step sizes of one phase, kept positive through abs() (SPEC.md section 4)."""
        return StepSizes(
            alpha=list(self.alpha[phase].abs()), tau=list(self.tau[phase].abs()), abar=list(self.abar[phase].abs())
        )

    def step_size_parameters(self) -> list[nn.Parameter]:
        """alpha, tau, abar and eps0: trained with their own (smaller) learning rate."""
        return [self.alpha, self.tau, self.abar, self.eps0]

    def initial_image(self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        """x0 = A^H y (SENSE-combined with coil ``maps``), or the learned k-space initialiser (single-coil)."""
        if self.initializer is None:
            return zero_filled(kspace, mask, maps)
        if maps is not None:
            raise ValueError("the learned initial image works on single-coil k-space; use initial_image "
                             "'zero-filled' for multi-coil data")
        return self.initializer(kspace)

    def forward(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        phases: int | None = None,
        mode: str = "plain",
        history: History | None = None,
        maps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run ``phases`` (default: all) phases; ``history`` (if given) receives one record per phase.

        Single-coil k-space is (B, C, H, W); multi-coil k-space (B, C, Nc, H, W) comes with coil ``maps``
        (see :mod:`lpam.problem`) and then each data term is summed over the coils, A_j = P F S_c."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        phases = self.config.phases if phases is None else phases
        if not 1 <= phases <= self.config.phases:
            raise ValueError(f"phases must lie in 1..{self.config.phases}, got {phases}")
        check_kspace(kspace, mask, maps)
        if kspace.shape[1] != self.config.contrasts:
            raise ValueError(f"model expects {self.config.contrasts} contrasts, k-space has {kspace.shape[1]}")
        mask = mask.to(kspace.device)
        objective = mri_objective(kspace, mask, self.regularizer(), maps)
        x0 = self.initial_image(kspace, mask, maps)
        state = initial_state(list(x0.unbind(1)), self.eps0.abs(), len(self.eps0))
        convergent = mode == "convergent"
        for phase in range(phases):
            state, record = lpam_iteration(
                objective, state, self.step_sizes(phase), self.constants,
                safeguard=convergent, eps_decay=convergent, record=history is not None,
            )
            if history is not None:
                history.append(record)
        return torch.stack(state.blocks, dim=1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable real parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

