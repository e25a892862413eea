"""Warm start: initialise a model from a checkpoint trained on other contrasts or with another number of
phases (``train.init_from``).

Tensors of the same shape are copied. A tensor that differs in exactly one axis whose sizes are the two
numbers of contrasts is mapped along that axis by contrast name: a contrast the checkpoint knows takes its
slice; a new one gets zero filters in the first layer of the joint g (features, C, 3, 3) and the mean of
the known step sizes (phases, C). So a 2-contrast network starts a 3-contrast one computing exactly what
it computed on T1 and T2, while the new contrast starts unregularised and its filters are learned
(docs/method.md section 3: N blocks go the same way). Starting the new filters at the mean of the known ones
instead cost 2.3 dB (T1) and 3.5 dB (T2) on the validation slab after 47 fine-tuning steps.

A model's per-phase parameters (``phase_parameters``, rows = phases) may have more rows than the checkpoint's:
the rows past its K repeat its last phase, as a network run past its trained K does (docs/method.md section
4), so a K-phase network starts a longer one computing exactly what it computed when run for that many phases.

An LPAM-net whose initial image comes from a U-Net (``initial_image: unet``) takes that U-Net's weights from a
trained U-Net checkpoint (``train.initializer_from``): :func:`warm_start_initializer`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from lpam.checkpoint import checkpoint_contrasts, load_checkpoint
from lpam.models.registry import model_type_of


def _contrast_axis(source: torch.Tensor, target: torch.Tensor, counts: tuple[int, int]) -> int | None:
    """The one axis along which ``source`` and ``target`` differ with sizes ``counts`` (else None)."""
    if source.ndim != target.ndim:
        return None
    differing = [axis for axis, (a, b) in enumerate(zip(source.shape, target.shape)) if a != b]
    if len(differing) == 1 and (source.shape[differing[0]], target.shape[differing[0]]) == counts:
        return differing[0]
    return None


def warm_start(model: nn.Module, path: str | Path, contrasts: Sequence[str]) -> list[str]:
    """Copy the weights of checkpoint ``path`` into ``model`` (to be trained on ``contrasts``), mapping the
    contrast axis by name; returns the names of tensors left at their initial values."""
    payload = load_checkpoint(path)
    source_type, target_type = payload.get("model_type", "lpam-net"), model_type_of(model.config)
    if source_type != target_type:
        raise ValueError(f"train.init_from: {path} holds a {source_type} model, this config trains a "
                         f"{target_type}; start from a {target_type} checkpoint")
    source_contrasts = checkpoint_contrasts(payload)
    source_state = payload["model"]
    state = model.state_dict()
    if len(source_contrasts) != len(set(source_contrasts)) or not source_contrasts:
        raise ValueError(f"{path}: the checkpoint does not record the contrasts it was trained on")
    kept = []
    for name, target in state.items():
        source = source_state.get(name)
        if source is None:
            kept.append(name)
            continue
        if name in model.phase_parameters and source.shape[0] < target.shape[0]:
            source = torch.cat([source, source[-1:].expand(target.shape[0] - source.shape[0], *source.shape[1:])])
        if source.shape == target.shape:
            state[name] = source.clone()
            continue
        axis = _contrast_axis(source, target, (len(source_contrasts), len(contrasts)))
        if axis is None:
            raise ValueError(f"{path}: {name} has shape {tuple(source.shape)}, the model needs "
                             f"{tuple(target.shape)}; only the number of contrasts may differ")
        new = torch.zeros_like(source.select(axis, 0)) if source.ndim > 2 else source.mean(dim=axis)
        slices = [source.select(axis, source_contrasts.index(c)) if c in source_contrasts else new for c in contrasts]
        state[name] = torch.stack(slices, dim=axis)
    if len(kept) == len(state):
        raise ValueError(f"train.init_from: {path} shares no weight with the model of this config "
                         "(another architecture?); nothing would be initialised from it")
    model.load_state_dict(state)
    return kept


def warm_start_initializer(model: nn.Module, path: str | Path, contrasts: Sequence[str]) -> None:
    """Copy the weights of the U-Net checkpoint ``path`` (trained on the same ``contrasts``, same channels and
    pools) into the U-Net that makes ``model``'s initial image."""
    payload = load_checkpoint(path)
    initializer = getattr(model, "initializer", None)
    if getattr(model.config, "initial_image", None) != "unet" or initializer is None:
        raise ValueError("train.initializer_from needs an LPAM-net with model.initial_image 'unet'")
    if payload.get("model_type") != "unet":
        raise ValueError(f"train.initializer_from: {path} holds a {payload.get('model_type', 'lpam-net')} model; "
                         "it must be a U-Net checkpoint (model.type: unet)")
    source_contrasts = checkpoint_contrasts(payload)
    if source_contrasts != list(contrasts):
        raise ValueError(f"train.initializer_from: {path} was trained on contrasts {source_contrasts}, this "
                         f"config trains {list(contrasts)}")
    stored = {key: payload["model_config"].get(key) for key in ("channels", "pools", "data_consistency")}
    wanted = {"channels": model.config.initializer_channels, "pools": model.config.initializer_pools,
              "data_consistency": True}
    if stored != wanted:
        raise ValueError(f"train.initializer_from: {path} is a U-Net with {stored}; model.initializer_channels "
                         f"and model.initializer_pools ask for {wanted}")
    initializer.load_state_dict(payload["model"])
