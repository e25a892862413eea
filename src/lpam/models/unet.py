"""`unet-joint`, the learned joint baseline of `lpam benchmark`: a residual U-Net on the zero-filled images
of all contrasts at once, followed by data consistency (X-Net-like).

    x_hat = DC(x0 + U([Re x0; Im x0])),  x0 = F^H P y,
    DC(x) = F^H ((1 - P) F x + P y)   (hard data consistency, exact for noise-free k-space).

Multi-coil k-space (B, C, Nc, H, W) with coil maps S: x0 = A^H y = sum_c conj(S_c) F^H P y_c (SENSE) and
DC(x) = x - A^H (A x - y), a unit gradient step on the data term. With sum_c |S_c|^2 = 1 this is
sum_c conj(S_c) F^H ((1 - P) F S_c x + P y_c), hard data consistency per coil, coil-combined: exact for
full sampling (then A^H A = I) and otherwise never increasing the data residual, which becomes
(I - A A^H)(A x - y) with ||A|| <= 1; with one all-ones coil it is the single-coil DC above.

U: `pools` 2x2 max-pool levels, two 3x3 convolutions with instance norm and leaky ReLU per level
(fastMRI's block), transposed-convolution upsampling, skip connections, a 1x1 output convolution. The
image is zero-padded to a multiple of 2**pools and cropped back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lpam.options import checked_options
from lpam.physics.mri import ContrastPhysics
from lpam.problem import check_measurements


@dataclass
class UNetConfig:
    """Architecture of the joint residual U-Net; stored in every checkpoint."""

    contrasts: int = 2
    channels: int = 32
    pools: int = 3
    data_consistency: bool = True

    def __post_init__(self) -> None:
        if self.contrasts < 1 or self.channels < 1 or self.pools < 0:
            raise ValueError(f"U-Net needs contrasts >= 1, channels >= 1 and pools >= 0, got {self}")

    modes: ClassVar[tuple[str, ...]] = ("plain",)  # no convergent mode
    natural_mode: ClassVar[str] = "plain"
    scale_equivariant: ClassVar[bool] = False  # sees the data at the scale it is given

    def check_schedule(self, phases: list[int]) -> None:
        """A U-Net is one pass, not phases: every training stage gives phases 1."""
        if any(p != 1 for p in phases):
            raise ValueError(f"the U-Net has no phases: every train.schedule stage needs phases: 1, got {phases}")

    @classmethod
    def from_dict(cls, values: dict) -> "UNetConfig":
        return cls(**checked_options(cls, values, "unet model option"))

    def to_dict(self) -> dict:
        return asdict(self)


def _block(inputs: int, outputs: int) -> nn.Sequential:
    layers = []
    for channels_in in (inputs, outputs):
        layers += [nn.Conv2d(channels_in, outputs, 3, padding=1, bias=False), nn.InstanceNorm2d(outputs),
                   nn.LeakyReLU(0.2, inplace=True)]
    return nn.Sequential(*layers)


class ResidualUNet(nn.Module):
    """x_hat = unet-joint(y, P): complex images (B, C, H, W) from k-space (B, C, H, W) and mask."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        width, real_channels = self.config.channels, 2 * self.config.contrasts
        widths = [width * 2**level for level in range(self.config.pools + 1)]
        self.down = nn.ModuleList([_block(real_channels, widths[0])])
        self.down.extend(_block(widths[i], widths[i + 1]) for i in range(self.config.pools))
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2, bias=False) for i in reversed(range(self.config.pools))
        )
        self.up = nn.ModuleList(_block(2 * widths[i], widths[i]) for i in reversed(range(self.config.pools)))
        self.output = nn.Conv2d(widths[0], real_channels, 1)
        nn.init.zeros_(self.output.weight)  # start as the identity: x_hat = DC(x0)
        nn.init.zeros_(self.output.bias)

    def residual(self, channels: torch.Tensor) -> torch.Tensor:
        """U applied to real channels (B, 2C, H, W), padded to a multiple of 2**pools and cropped back."""
        height, width = channels.shape[-2:]
        multiple = 2**self.config.pools
        padded = F.pad(channels, (0, -width % multiple, 0, -height % multiple))
        skips, features = [], padded
        for level, block in enumerate(self.down):
            if level > 0:
                skips.append(features)
                features = F.max_pool2d(features, 2)
            features = block(features)
        for upsample, block in zip(self.upsample, self.up):
            features = block(torch.cat([skips.pop(), upsample(features)], dim=1))
        return self.output(features)[..., :height, :width]

    phase_parameters: tuple[str, ...] = ()  # no phases

    def step_size_parameters(self) -> list[nn.Parameter]:
        """No step sizes: every parameter trains at the network learning rate."""
        return []

    def checkpoint_extras(self) -> dict:
        """Nothing beyond the weights and the config."""
        return {}

    def load_checkpoint_extras(self, payload: dict) -> None:
        """Nothing beyond the weights and the config."""

    def forward(self, kspace: torch.Tensor, physics: ContrastPhysics, phases: int | None = None, mode: str = "plain",
                history: object = None) -> torch.Tensor:
        """The same call as LPAM-net; ``phases`` may only be None or 1, ``mode`` only plain, no history.
        Data consistency: x - A^H (A x - y), the unit gradient step on the data term, which is the hard data
        consistency F^H (P y + (1 - P) F x) for single-coil data and its coil-combined form with coils."""
        if phases not in (None, 1) or mode != "plain" or history is not None:
            raise ValueError("the U-Net has no phases, no convergent mode and no history (phases=1, mode='plain')")
        check_measurements(kspace, physics, self.config.contrasts)
        physics = physics.to(kspace.device)
        x0 = physics.zero_filled(kspace)
        channels = torch.view_as_real(x0).movedim(-1, 2).flatten(1, 2)  # (B, C, H, W) -> (B, 2C, H, W)
        update = self.residual(channels).unflatten(1, (-1, 2)).movedim(2, -1).contiguous()
        image = x0 + torch.view_as_complex(update)
        if not self.config.data_consistency:
            return image
        return image - physics.adjoint(physics.forward(image) - kspace)
