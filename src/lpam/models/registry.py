"""The trainable reconstruction models by name: a config's ``model.type`` and a checkpoint's
``model_type`` pick one. All share the call ``model(y, physics, phases=None, mode="plain", history=None)``
(``physics``: the :class:`~lpam.physics.mri.MRIPhysics` of the measurements y, single- or multi-coil)."""
from __future__ import annotations

from torch import nn

from lpam.models.lpam_net import LPAMNet, LPAMNetConfig
from lpam.models.unet import ResidualUNet, UNetConfig

ModelConfig = LPAMNetConfig | UNetConfig
MODEL_TYPES: dict[str, tuple[type, type]] = {"lpam-net": (LPAMNetConfig, LPAMNet), "unet": (UNetConfig, ResidualUNet)}


def model_config_from_dict(values: dict, model_type: str = "lpam-net") -> ModelConfig:
    """A model config from a mapping; a ``type`` key in it overrides ``model_type``."""
    values = dict(values)
    model_type = values.pop("type", model_type)
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    return MODEL_TYPES[model_type][0].from_dict(values)


def model_type_of(config: ModelConfig) -> str:
    for name, (config_class, _) in MODEL_TYPES.items():
        if isinstance(config, config_class):
            return name
    raise TypeError(f"not a model config: {type(config).__name__}")


def build_model(config: ModelConfig) -> nn.Module:
    return MODEL_TYPES[model_type_of(config)][1](config)


def run_phases(model: nn.Module, mode: str, phases: int | None = None) -> int | None:
    """The phases a call of ``model`` in ``mode`` runs: ``phases`` if given, else its default for the mode (None
    for a model without phases)."""
    config = model.config
    if phases:
        return phases
    return config.default_phases(mode) if isinstance(config, LPAMNetConfig) else None


def run_description(model: nn.Module, mode: str, phases: int | None = None) -> str:
    """How a call runs, in words: "convergent mode, 40 phases" (an LPAM-net), "one pass" (a U-Net)."""
    count = run_phases(model, mode, phases)
    return "one pass" if count is None else f"{mode} mode, {count} phases"
